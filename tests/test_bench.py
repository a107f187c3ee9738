"""`python -m kexp.bench --quick`: the reduced benchmark CI runs, and the JSON it writes.

Only the shape of the results is checked here; speed goals live in the benchmark's own ratios
(docs/benchmarks.md), never in timed tests.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT, run_kexp

pytestmark = pytest.mark.slow

# a dense and a convolutional case (CIFAR-sized, batch norm): every case takes the same path,
# and the other two would add ~30 s to CI
CASES = ["mlp", "resnet20"]


@pytest.fixture(scope="module")
def quick(tmp_path_factory) -> tuple[dict, str]:
    """One reduced run of CASES (a subprocess, as `make bench ARGS=--quick` runs it)."""
    tmp = tmp_path_factory.mktemp("bench")
    done = run_kexp(["--quick", "--cases", ",".join(CASES), "--out", str(tmp / "bench.json")],
                    tmp, module="kexp.bench")
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((tmp / "bench.json").read_text()), done.stdout


def test_quick_mode_writes_every_case_with_a_b_c_throughput_and_ratios(quick):
    result, _ = quick
    assert result["mode"] == "quick" and result["repeats"] == 1
    assert list(result["cases"]) == CASES
    for name, case in result["cases"].items():
        ips = case["images_per_second"]
        assert all(ips[v] > 0 for v in "abc"), (name, ips)
        assert case["ratio_c_a"] == pytest.approx(ips["c"] / ips["a"], abs=1e-3)
        assert case["ratio_c_b"] == pytest.approx(ips["c"] / ips["b"], abs=1e-3)
        assert all(len(case["runs"][v]) == 1 for v in "abc")
        assert all(case["first_step_seconds"][v] > 0 for v in "abc"), (name, case)
        assert case["steps_per_epoch"] * case["batch_size"] == case["train_examples"]
        assert case["flops_per_image"] > 0
        assert case["mfu"]["measured"] or case["mfu"]["why"]
        # what trainer.steps_per_execution=auto chose, read back from c's MLflow run: at least
        # one step a call and at most an epoch's
        assert all(1 <= n <= case["steps_per_epoch"] for n in case["steps_per_execution_c"])


def test_quick_mode_records_cfg_job_time_machine_and_versions(quick):
    result, stdout = quick
    job = result["cfg_job_seconds"]
    assert len(job["runs"]) == 3 and job["median"] > 0 and job["goal"] == 2.0
    assert result["machine"]["cores"] >= 1 and result["machine"]["platform"]
    assert "gpu" in result["machine"]
    assert set(result["versions"]) >= {"python", "tensorflow", "keras", "kexp"}
    for name in CASES:  # one table row per case
        assert any(line.startswith(name) for line in stdout.splitlines()), stdout


@pytest.mark.parametrize("args", [["--help"], ["--cases", "mlp,nope"]])
def test_help_and_argument_errors_do_not_import_tensorflow(args):
    code = ("import sys; from kexp.bench import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n    code = e.code\n"
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'TF imported'\n"
            "sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert done.returncode == (0 if args == ["--help"] else 2), done.stderr
    assert ("--quick" in done.stdout) if args == ["--help"] else ("nope" in done.stderr)


def test_mfu_is_three_forward_flops_times_images_per_second_over_the_named_peak():
    from kexp.bench import mfu, peak_of

    assert peak_of("NVIDIA H100 80GB HBM3")["peak_of"] == "H100 SXM"
    assert peak_of("NVIDIA H100 PCIe")["peak_of"] == "H100 PCIe"
    assert peak_of("NVIDIA A100-SXM4-40GB")["peak_of"] == "A100"
    assert peak_of("NVIDIA H200 NVL")["peak_of"] is None
    assert mfu(10**9, {"a": 1.0}, {}, "float32") == {"measured": False, "why": "no GPU"}
    unknown = mfu(10**9, {"a": 1.0}, peak_of("Tesla K80"), "float32")
    assert not unknown["measured"] and "unknown peak" in unknown["why"]
    h100 = mfu(10**9, {"a": 1000.0, "c": 2000.0}, peak_of("NVIDIA H100 80GB HBM3"),
               "mixed_bfloat16")
    assert h100["dtype"] == "fp16/bf16" and h100["peak_tflops"] == 989.4
    assert h100["c"] == pytest.approx(3 * 10**9 * 2000 / 989.4e12, abs=1e-5)
