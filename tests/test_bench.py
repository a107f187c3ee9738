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

# a dense and a convolutional case (CIFAR-sized, batch norm): every image case takes the same
# path, and the other two would add ~30 s to CI
CASES = ["mlp", "resnet20"]
# one case of every other kind: texts and a table three ways (a, b, c), and a task whose
# hand-written script is a benchmark of its own two ways (a, c); lstm_lm and seq2seq take
# dcgan's path (tests/test_task_benches.py runs their benchmarks) and would add ~45 s
OTHER_KINDS = {"lstm_text": "texts", "mlp_table": "rows", "dcgan": "images"}


@pytest.fixture(scope="module")
def quick_all(tmp_path_factory) -> tuple[dict, str]:
    """One reduced run of CASES and OTHER_KINDS (a subprocess, as `make bench ARGS=--quick`
    runs it)."""
    tmp = tmp_path_factory.mktemp("bench")
    names = [*CASES, *OTHER_KINDS]
    done = run_kexp(["--quick", "--cases", ",".join(names), "--out", str(tmp / "bench.json")],
                    tmp, module="kexp.bench")
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((tmp / "bench.json").read_text()), done.stdout


@pytest.fixture(scope="module")
def quick(quick_all) -> tuple[dict, str]:
    """The run's image cases (CASES) only."""
    result, stdout = quick_all
    return {**result, "cases": {n: result["cases"][n] for n in CASES}}, stdout


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


def test_every_task_has_a_case_timed_against_its_hand_written_keras(quick_all):
    result, stdout = quick_all
    for name, unit in OTHER_KINDS.items():
        case = result["cases"][name]
        speed, variants = case[f"{unit}_per_second"], set(case["runs"])
        # texts and tables: a, b and c; the other tasks: their own script (a) and kexp (c)
        assert variants == ({"a", "b", "c"} if unit in ("texts", "rows") else {"a", "c"})
        assert case["unit"] == unit and all(speed[v] > 0 for v in variants), (name, case)
        assert case["ratio_c_a"] == pytest.approx(speed["c"] / speed["a"], abs=1e-3)
        assert (case["ratio_c_b"] is None) == ("b" not in variants)
        assert case["goal_met"] == (case["ratio_c_a"] >= case["goal_c_a"] == 1.0)
        assert case["first_step_behind_a"] == pytest.approx(
            case["first_step_seconds"]["c"] - case["first_step_seconds"]["a"], abs=0.011)
        # c logs to MLflow at its defaults, so auto's choice is read back from every c run
        assert all(n >= 1 for n in case["steps_per_execution_c"]), case
        assert any(line.startswith(name) for line in stdout.splitlines()), stdout
    # the same network on both sides, or the benchmark refuses (RuntimeError) to compare them
    assert all(result["cases"][n]["params"] > 0 for n in ("lstm_text", "mlp_table"))


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
