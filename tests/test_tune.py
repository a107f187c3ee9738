"""`python -m kexp.tune`: every tuner on digits, nested MLflow runs, best.yaml, resume, failures."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
from hydra import compose, initialize_config_module

from tests.conftest import run_kexp
from tests.test_e2e import client

pytestmark = pytest.mark.slow

TINY = ["trainer.epochs=2", "trainer.verbose=0", "model.hidden_units=[32]"]


def compose_tune(overrides: list[str]):
    with initialize_config_module("kexp.conf", version_base="1.3"):
        return compose("tune", overrides=overrides)


@pytest.mark.parametrize(("tuner", "extra"), [
    ("random", ["tuner.max_trials=2"]),
    ("bayesian", ["tuner.max_trials=3", "tuner.num_initial_points=2"]),
    ("hyperband", ["tuner.max_epochs=2", "tuner.factor=2"]),
    ("grid", ["search=optimizer"]),
])
def test_each_tuner_finds_a_best_trial_on_digits(tmp_path, tuner, extra):
    from kexp.tuning.search import tune

    base = [*TINY, "logger=none"]
    cfg = compose_tune([f"tuner={tuner}", *extra, *base, f"paths.log_dir={tmp_path}"])
    summary = tune(cfg, base)
    assert summary["metrics"]["trials_completed"] >= 2
    assert summary["metrics"]["trials_failed"] == 0
    assert 0.3 < summary["best_score"] <= 1.0  # chance is 0.1 on digits
    if tuner == "grid":
        rows = (tmp_path / "runs").glob("*/trials.csv")
        (table,) = [r.read_text().splitlines() for r in rows]
        assert sorted(line.split(",")[-1] for line in table[1:]) == ["adam", "rmsprop", "sgd"]


def test_search_is_a_parent_run_with_a_child_run_per_trial_and_best_yaml_retrains(tmp_path):
    done = run_kexp(["tuner.max_trials=3", "tuner.retrain_best=true", *TINY], tmp_path,
                    module="kexp.tune")
    assert done.returncode == 0, done.stderr[-3000:]
    progress = [line for line in done.stdout.splitlines() if line.startswith("[kexp.tune] trial")]
    assert [line.split()[2] for line in progress] == ["1/3", "2/3", "3/3"]
    c = client(tmp_path / "logs")
    runs = c.search_runs([c.get_experiment_by_name("kexp").experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("kexp.search") == "parent"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id
                and "kexp.trial_id" in r.data.tags]
    assert parent.info.status == "FINISHED" and parent.data.metrics["trials_completed"] == 3
    assert sorted(r.data.tags["kexp.trial_id"] for r in children) == ["0", "1", "2"]
    assert all(r.info.status == "FINISHED" for r in children)
    assert all(float(r.data.params["optimizer.lr"]) > 0 for r in children)  # full configs
    best = max(children, key=lambda r: r.data.metrics["val_accuracy"])
    assert parent.data.metrics["best_val_accuracy"] >= best.data.metrics["val_accuracy"]
    artifacts = {a.path for a in c.list_artifacts(parent.info.run_id)}
    assert {"best.yaml", "trials.csv", "objective_vs_params.png",
            "parallel_coordinates.png"} <= artifacts

    # tuner.retrain_best: the best config on train+val, tested once, linked to the search
    (retrain,) = [r for r in runs if r.data.tags.get("kexp.retrain") == "best"]
    assert retrain.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert retrain.info.status == "FINISHED" and retrain.data.params["data.train_on_val"] == "True"
    assert parent.data.metrics["retrain_test_accuracy"] == retrain.data.metrics["test_accuracy"]

    (best_dir,) = [p.parent for p in (tmp_path / "logs" / "tune").glob("*/best.yaml")]
    retrain = run_kexp(["--config-path", str(best_dir), "--config-name", "best",
                        "logger.backend=none"], tmp_path)
    assert retrain.returncode == 0, retrain.stderr[-3000:]
    (metrics,) = (tmp_path / "logs" / "runs").glob("*/metrics.json")
    assert json.loads(metrics.read_text())["epochs"] == 2
    retrained = json.loads((best_dir / "retrain_best" / "metrics.json").read_text())
    assert retrained["epochs"] == 2 and retrained["test_accuracy"] > 0.3


def test_a_killed_search_resumes_and_counts_every_trial_once(tmp_path):
    args = [sys.executable, "-m", "kexp.tune", "tuner.max_trials=4", "trainer.epochs=3",
            "trainer.verbose=0", "model.hidden_units=[32]"]
    env = {**__import__("os").environ, "KEXP_LOG_DIR": str(tmp_path / "logs")}
    first = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)
    for line in first.stdout:  # kill it hard once two trials are done
        if line.startswith("[kexp.tune] trial 2/4"):
            time.sleep(1.0)  # the third trial is under way
            first.send_signal(signal.SIGKILL)
            break
    first.wait(timeout=60)
    second = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    c = client(tmp_path / "logs")
    runs = c.search_runs([c.get_experiment_by_name("kexp").experiment_id])
    parents = [r for r in runs if r.data.tags.get("kexp.search") == "parent"]
    assert len(parents) == 1 and parents[0].data.metrics["trials_completed"] == 4
    finished = [r.data.tags["kexp.trial_id"] for r in runs
                if r.data.tags.get("kexp.trial_id") and r.info.status == "FINISHED"]
    assert sorted(finished) == ["0", "1", "2", "3"]  # none twice, none lost
    assert all(r.info.status != "RUNNING" for r in runs)


def test_a_search_whose_trials_all_fail_exits_nonzero_with_the_error(tmp_path):
    # inputs divided by 1e-30 overflow float32: every trial's loss is NaN in its first step
    done = run_kexp(["search=lr", "data.scale=1.0e-30", "tuner.max_trials=3",
                     "tuner.max_failed_trials=2", *TINY], tmp_path, module="kexp.tune")
    assert done.returncode == 1, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("kexp: error: every trial of the search failed")
    assert "not finite" in last or "nan" in last.lower()
    assert not list((tmp_path / "logs" / "runs").glob("*/best.yaml"))
    progress = [line for line in done.stdout.splitlines() if line.startswith("[kexp.tune] trial")]
    assert len(progress) == 2 and all("FAILED: " in line for line in progress)  # then it stops
