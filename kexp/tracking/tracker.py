"""The run lifecycle in MLflow: start, log as training goes, end FINISHED, FAILED or KILLED.

The `Tracker` protocol is all the training code sees; `logger=none` swaps in a
`NullTracker`, so the recipe never asks which backend is on.
"""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path
from typing import Any, Protocol

import keras
from omegaconf import DictConfig

import kexp
from kexp.tracking.params import flatten

log = logging.getLogger(__name__)


class Tracker(Protocol):
    run_id: str | None

    def start(self, run_name: str, params: dict[str, Any], tags: dict[str, str],
              resume: str | None = None) -> None: ...
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None: ...
    def log_artifact(self, path: Path) -> None: ...
    def log_model(self, model: keras.Model) -> None: ...
    def finish(self, status: str) -> None: ...
    def kill_stale_children(self) -> int: ...
    def callback(self) -> keras.callbacks.Callback: ...


class NullTracker:
    """`logger=none`: outputs stay in the run directory only."""

    run_id = None

    def start(self, run_name: str, params: dict[str, Any], tags: dict[str, str],
              resume: str | None = None) -> None: ...
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None: ...
    def log_artifact(self, path: Path) -> None: ...
    def log_model(self, model: keras.Model) -> None: ...
    def finish(self, status: str) -> None: ...

    def kill_stale_children(self) -> int:
        return 0

    def callback(self) -> keras.callbacks.Callback:
        return keras.callbacks.Callback()


class MlflowTracker:
    """One MLflow run in `experiment` at `tracking_uri`."""

    def __init__(self, tracking_uri: str, experiment: str, log_model: bool = True,
                 artifact_root: Path | None = None) -> None:
        """`artifact_root`: where a new experiment keeps its artifacts (None: the store's
        default, which for a SQLite store is ./mlruns in whatever directory the run starts)."""
        import mlflow

        self._mlflow = mlflow
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.should_log_model = log_model
        self.artifact_root = artifact_root
        self.run_id: str | None = None

    def start(self, run_name: str, params: dict[str, Any], tags: dict[str, str],
              resume: str | None = None) -> None:
        """Start (or, given a run id in `resume`, reopen) the run; inside another active run,
        e.g. a search's parent run, it becomes a nested child run."""
        from mlflow.exceptions import MlflowException

        mlflow = self._mlflow
        mlflow.set_tracking_uri(self.tracking_uri)
        if self.artifact_root and mlflow.get_experiment_by_name(self.experiment) is None:
            try:
                mlflow.create_experiment(self.experiment,
                                         artifact_location=self.artifact_root.resolve().as_uri())
            except MlflowException:
                pass  # a run started at the same moment created it first
        mlflow.set_experiment(self.experiment)
        run = mlflow.start_run(run_id=resume, run_name=None if resume else run_name, tags=tags,
                               nested=mlflow.active_run() is not None)
        self.run_id = run.info.run_id
        mlflow.log_params(flatten(params))
        log.info("MLflow run %s in experiment '%s' at %s", self.run_id, self.experiment,
                 self.tracking_uri)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self._mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)

    def log_artifact(self, path: Path) -> None:
        if Path(path).exists():
            self._mlflow.log_artifact(str(path))

    def log_model(self, model: keras.Model) -> None:
        """Log `model` as an MLflow Keras model with a signature (input and output shapes and
        dtypes), found by calling it on two all-zero inputs of its input spec: no data is
        drawn, so it works the same under any strategy (a multi-worker run's dataset cannot be
        iterated by the chief alone)."""
        if not self.should_log_model:
            return
        import numpy as np
        import tensorflow as tf
        from mlflow.models import infer_signature

        spec = model.inputs[0]
        x = np.zeros((2, *spec.shape[1:]), dtype=spec.dtype)
        # a direct call: model.predict would gather across the workers of a multi-worker run
        y = keras.ops.convert_to_numpy(model(x, training=False))
        # explicit requirements skip MLflow's slow inference by re-importing the model
        self._mlflow.keras.log_model(
            model, name="model", signature=infer_signature(x, y),
            pip_requirements=[f"tensorflow=={tf.__version__}", f"keras=={keras.__version__}"])

    def kill_stale_children(self) -> int:
        """Mark child runs still RUNNING (their process was killed) KILLED; how many there were.

        A resumed search calls this on its reopened parent run."""
        client = self._mlflow.MlflowClient(self.tracking_uri)
        run = client.get_run(self.run_id)
        stale = client.search_runs(
            [run.info.experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{self.run_id}' and "
                          f"attributes.status = 'RUNNING'")
        for child in stale:
            client.set_terminated(child.info.run_id, status="KILLED")
        return len(stale)

    def finish(self, status: str) -> None:
        """End the run as FINISHED, FAILED or KILLED (interrupted by the user)."""
        if self.run_id is not None:
            self._mlflow.end_run(status=status)

    def callback(self) -> keras.callbacks.Callback:
        return _EpochMetrics(self)


class _EpochMetrics(keras.callbacks.Callback):
    """Logs every epoch's train/val metrics and learning rate, step = epoch number."""

    def __init__(self, tracker: MlflowTracker) -> None:
        super().__init__()
        self.tracker = tracker

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs:
            self.tracker.log_metrics(logs, step=epoch)


def make_tracker(logger_cfg: DictConfig, log_dir: Path) -> Tracker:
    """The tracker `logger.backend` names; MLflow's store defaults to <log_dir>/mlflow.db."""
    if logger_cfg.backend == "none":
        return NullTracker()
    log_model = logger_cfg.get("log_model", True)
    if logger_cfg.get("tracking_uri"):
        return MlflowTracker(logger_cfg.tracking_uri, logger_cfg.experiment, log_model)
    # the default store keeps the database and the artifacts together under log_dir
    log_dir = Path(log_dir).resolve()
    log_dir.mkdir(parents=True, exist_ok=True)
    return MlflowTracker(f"sqlite:///{log_dir}/mlflow.db", logger_cfg.experiment, log_model,
                         artifact_root=log_dir / "mlartifacts")


def run_tags(model_name: str, data_name: str, extra: dict[str, Any]) -> dict[str, str]:
    """The tags every run carries: what it trained, on what, with which kexp and commit."""
    tags = {"model": model_name, "dataset": data_name, "kexp_version": kexp.__version__,
            **{str(k): str(v) for k, v in extra.items()}}
    commit = git_commit(Path.cwd())
    if commit:
        tags["git_commit"] = commit
    return tags


def git_commit(where: Path) -> str | None:
    """The commit of the checkout the run starts in, '+dirty' when it has changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True,
                              text=True, timeout=5, env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"})
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=where, capture_output=True, text=True, timeout=5)
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.TimeoutExpired):
        return None
