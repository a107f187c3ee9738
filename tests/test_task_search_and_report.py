"""Searches and the report follow the task's monitor: a regression search minimizes val_rmse,
a search can compare losses, and the report ranks regression runs by test RMSE."""

from __future__ import annotations

import csv

import pandas as pd
import pytest
from hydra import compose, initialize_config_module

from kexp.tracking import runs


def compose_tune(overrides: list[str]):
    with initialize_config_module("kexp.conf", version_base="1.3"):
        return compose("tune", overrides=overrides)


def trials_table(log_dir) -> list[dict[str, str]]:
    (path,) = log_dir.glob("runs/*/trials.csv")
    return list(csv.DictReader(path.open()))


@pytest.mark.slow
def test_a_regression_search_minimizes_the_tasks_monitor(tmp_path):
    from kexp.tuning.search import tune

    base = ["task=regression", "data=diabetes", "model.hidden_units=[16]", "trainer.epochs=3",
            "trainer.verbose=0", "logger=none"]
    cfg = compose_tune([*base, "search=lr", "tuner.max_trials=3", f"paths.log_dir={tmp_path}"])
    assert (cfg.tuner.objective, cfg.tuner.direction) == ("val_rmse", "min")
    summary = tune(cfg, base)
    scores = [float(row["val_rmse"]) for row in trials_table(tmp_path)]
    assert len(scores) == 3 and summary["best_score"] == pytest.approx(min(scores))


@pytest.mark.slow
def test_a_grid_search_compares_the_losses(tmp_path):
    from kexp.tuning.search import tune

    base = ["model.hidden_units=[32]", "trainer.epochs=1", "trainer.verbose=0", "logger=none",
            "optimizer.lr=0.01"]
    cfg = compose_tune([*base, "tuner=grid", "search=task_loss", "tuner.top_k=6",
                        f"paths.log_dir={tmp_path}"])
    summary = tune(cfg, base)
    rows = trials_table(tmp_path)
    assert sorted(r["task.loss"] for r in rows) == sorted(
        ["cross_entropy", "focal", "mse", "hinge", "squared_hinge", "kl_divergence"])
    assert summary["metrics"]["trials_failed"] == 0
    assert summary["best_score"] == pytest.approx(max(float(r["val_accuracy"]) for r in rows))


def frame(rows: list[dict]) -> pd.DataFrame:
    base = {"kind": "run", "status": "FINISHED", "model": "mlp", "dataset": "diabetes",
            "wall_seconds": 1.0, "parent_run_id": None}
    return pd.DataFrame([{**base, **row} for row in rows])


def test_regression_runs_rank_by_test_rmse_lowest_first_and_show_r2():
    regression = {"params.task._target_": "kexp.tasks.regression.Regression",
                  "params.task.monitor": "val_rmse", "params.task.mode": "min"}
    table = frame([{**regression, "run_id": "a", "run_name": "a", "metrics.test_rmse": 60.0,
                    "metrics.test_r2": 0.40, "metrics.test_mae": 50.0},
                   {**regression, "run_id": "b", "run_name": "b", "metrics.test_rmse": 55.0,
                    "metrics.test_r2": 0.48, "metrics.test_mae": 45.0},
                   {**regression, "run_id": "c", "run_name": "c", "status": "FAILED",
                    "metrics.test_rmse": None}])
    rank = runs.ranking(table)
    assert (rank.metric, rank.higher) == ("metrics.test_rmse", False)
    summary = runs.summary_table(table)
    assert list(summary["run"]) == ["b", "a", "c"]
    assert {"test_rmse", "test_r2", "test_mae"} <= set(summary.columns)
    assert runs.best_run(table)["run_id"] == "b"
    assert runs.top_runs(table, 2) == ["b", "a"]


def test_an_experiment_with_two_tasks_ranks_each_by_its_own_monitor():
    table = frame([{"run_id": "r", "run_name": "r", "metrics.test_rmse": 50.0,
                    "params.task._target_": "kexp.tasks.regression.Regression",
                    "params.task.monitor": "val_rmse", "params.task.mode": "min"},
                   {"run_id": "c", "run_name": "c", "metrics.test_accuracy": 0.9}])  # old run
    groups = runs.by_task(table)
    assert [name for name, _ in groups] == ["Regression", "Classification"]
    assert [runs.ranking(rows).metric for _, rows in groups] == ["metrics.test_rmse",
                                                                 "metrics.test_accuracy"]
