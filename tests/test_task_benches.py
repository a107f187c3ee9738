"""`python -m kexp.tasks.language_model.bench --quick` and `kexp.tasks.seq2seq.bench --quick`:
the reduced language-model and translation benchmarks and the JSON they write. Only the shape
of the results is checked here; the speed goal lives in the benchmark's own ratio
(docs/benchmarks.md), never in a timed test."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_kexp

pytestmark = pytest.mark.slow


# gpt_mini: the longer hand-written path (the lstm's is a subset of its plumbing); ~20 s
@pytest.mark.parametrize("model", ["gpt_mini"])
def test_quick_mode_times_both_sides_on_the_same_weights(tmp_path, model):
    out = tmp_path / "lm.json"
    done = run_kexp(["--quick", "--model", model, "--out", str(out)], tmp_path,
                    module="kexp.tasks.language_model.bench")
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["mode"] == "quick" and result["model"] == model
    tps = result["tokens_per_second"]
    assert tps["keras"] > 0 and tps["kexp"] > 0
    assert result["ratio_kexp_keras"] == pytest.approx(tps["kexp"] / tps["keras"], abs=1e-3)
    # the benchmark refuses to compare networks of different sizes
    assert {r["params"] for side in ("keras", "kexp") for r in result["runs"][side]} == \
        {result["params"]}
    assert "kexp / hand-written" in done.stdout


def test_the_translation_benchmark_times_both_sides_on_the_same_weights(tmp_path):
    out = tmp_path / "seq2seq.json"
    done = run_kexp(["--quick", "--out", str(out)], tmp_path, module="kexp.tasks.seq2seq.bench")
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    tps = result["tokens_per_second"]
    assert result["mode"] == "quick" and tps["keras"] > 0 and tps["kexp"] > 0
    assert result["ratio_kexp_keras"] == pytest.approx(tps["kexp"] / tps["keras"], abs=1e-3)
    assert {r["params"] for side in ("keras", "kexp") for r in result["runs"][side]} == \
        {result["params"]}
    assert "kexp / hand-written" in done.stdout
