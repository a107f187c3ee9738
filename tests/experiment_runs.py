"""One small experiment in an MLflow store, made once per test session and read by
tests/test_notebooks.py (compare_runs.ipynb) and tests/test_report.py (`kexp.report`).

Two training runs and a two-trial search on digits, trained in-process with the real
`train()` and `tune()`. Under pytest-xdist each worker would run a module fixture of its own,
so the store is made under a lock in a folder every worker of the session shares: whichever
asks first trains, the others wait and read.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

# run name -> overrides; different widths give different params and FLOPs to plot against
RUNS = {"wide-lr0.01": ["model.hidden_units=[32]", "optimizer.lr=0.01"],
        "narrow-lr0.003": ["model.hidden_units=[16]", "optimizer.lr=0.003"]}
SEARCH = "tune-random-mlp-digits"  # the search's run name: tune-<tuner.project_name>
TRIALS = ("trial-0", "trial-1")
EMPTY_EXPERIMENT = "empty"  # an experiment without runs, for the report's error
TINY = ["trainer.epochs=2", "trainer.verbose=0", "callbacks=none", "logger.log_model=false"]


def store_uri(log_dir: Path) -> str:
    return f"sqlite:///{log_dir.resolve()}/mlflow.db"


@pytest.fixture(scope="module")
def experiment_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The log dir whose mlflow.db holds the experiment `kexp` described above."""
    base = tmp_path_factory.getbasetemp()
    # xdist gives each worker its own basetemp inside the session's; outside xdist the
    # parent would be shared with earlier sessions
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "experiment-runs"
    root.mkdir(exist_ok=True)
    with open(root / "lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        if not (root / "done").exists():
            with pytest.MonkeyPatch.context() as env:
                env.delenv("MLFLOW_TRACKING_URI", raising=False)  # the default store, under root
                _make_runs(root / "logs")
            (root / "done").write_text("")
    return root / "logs"


def _make_runs(log_dir: Path) -> None:
    import mlflow
    from hydra import compose, initialize_config_module

    from kexp.recipe import train
    from kexp.tuning.search import tune

    base = [*TINY, f"paths.log_dir={log_dir}"]
    with initialize_config_module("kexp.conf", version_base="1.3"):
        for name, extra in RUNS.items():
            train(compose("train", overrides=[*base, *extra, f"run_name={name}"]))
        trial_base = [*base, "model.hidden_units=[16]", "trainer.epochs=1"]
        search = compose("tune", overrides=[*trial_base, "search=lr", "tuner.max_trials=2"])
    tune(search, trial_base)
    mlflow.MlflowClient(store_uri(log_dir)).create_experiment(EMPTY_EXPERIMENT)
