"""The run lifecycle in MLflow: start, log as training goes, end FINISHED, FAILED or KILLED.

The `Tracker` protocol is all the training code sees; `logger=none` swaps in a
`NullTracker`, `logger=tensorboard` a `TensorBoardTracker` (kexp/tracking/tensorboard.py) and
`logger=[mlflow,tensorboard]` both behind one `Trackers` (fanout.py), so the recipe never asks
which backend is on.

Tracking must never cost a run: `check()` fails a run whose store cannot be reached in
seconds, before any training, and once a run has started, a store that goes away (a server
killed, a SQLite file locked for too long) only switches the tracker offline: one warning, no
further calls, and the run directory, which keeps everything, can be uploaded later with
`python -m kexp.sync`. Importing this module does not import TensorFlow (`kexp.sync` uses it).
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from omegaconf import DictConfig

import kexp
from kexp.errors import KexpError
from kexp.tracking.params import flatten
from kexp.tracking.store import (
    START_SERVER,
    bound_http_calls,
    environment_kept,
    failure_reason,
    http_probe,
    is_http,
    quiet_retries,
    sqlite_path,
    store_lock,
)

if TYPE_CHECKING:
    import keras

log = logging.getLogger(__name__)

# what train() logs once the test split is evaluated (`kexp.sync` logs the same from
# metrics.json): every test_* and best_* number the task summarized, plus these
FINAL_METRICS = ("examples_per_second",)
# the run card, logged as soon as the run starts
CARD_METRICS = ("params", "trainable_params", "flops")


def final_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The numbers of a finished run's metrics.json that go to MLflow as final metrics: the
    task's test_* and best_* values (test_accuracy, best_val_accuracy, test_rmse, ...)."""
    return {k: v for k, v in metrics.items()
            if (k.startswith(("test_", "best_")) or k in FINAL_METRICS)
            and isinstance(v, (int, float)) and not isinstance(v, bool)}


class Tracker(Protocol):
    run_id: str | None
    # the run's directory, named in the warning when the store goes away (None: not known)
    run_dir: Path | None

    def check(self) -> None: ...
    def start(self, run_name: str, params: dict[str, Any], tags: dict[str, str],
              resume: str | None = None) -> None: ...
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None: ...
    def log_params(self, params: dict[str, Any]) -> None: ...
    def log_artifact(self, path: Path, folder: str | None = None) -> None: ...
    def log_image(self, path: Path, key: str, step: int) -> None: ...
    def log_model(self, model: keras.Model) -> None: ...
    def finish(self, status: str) -> None: ...
    def kill_stale_children(self) -> int: ...
    def callback(self) -> keras.callbacks.Callback: ...


class NullTracker:
    """`logger=none`: outputs stay in the run directory only."""

    run_id = None
    run_dir: Path | None = None

    def check(self) -> None: ...
    def start(self, run_name: str, params: dict[str, Any], tags: dict[str, str],
              resume: str | None = None) -> None: ...
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None: ...
    def log_params(self, params: dict[str, Any]) -> None: ...
    def log_artifact(self, path: Path, folder: str | None = None) -> None: ...
    def log_image(self, path: Path, key: str, step: int) -> None: ...
    def log_model(self, model: keras.Model) -> None: ...
    def finish(self, status: str) -> None: ...

    def kill_stale_children(self) -> int:
        return 0

    def callback(self) -> keras.callbacks.Callback:
        import keras

        return keras.callbacks.Callback()


class MlflowTracker:
    """One MLflow run in `experiment` at `tracking_uri`."""

    def __init__(self, tracking_uri: str, experiment: str, log_model: bool = True,
                 artifact_root: Path | None = None, run_dir: Path | None = None,
                 offline_on_failure: bool = True, register_model: str | None = None) -> None:
        """`artifact_root`: where a new experiment keeps its artifacts (None: the store's
        default, which for a SQLite store is ./mlruns in whatever directory the run starts).
        `offline_on_failure=False` (`kexp.sync`: the upload is the job) lets a failing call
        raise instead of switching the tracker offline. `register_model`: a name in the
        model registry the logged model becomes a new version of (None: not registered)."""
        import mlflow

        # MLflow announces creating a new SQLite store's tables at INFO on stderr: two lines
        # that would break the one-line error of a run failing right after
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
        self._mlflow = mlflow
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.should_log_model = log_model
        self.register_model = register_model
        self.artifact_root = artifact_root
        self.run_id: str | None = None
        self.run_dir = run_dir
        self.offline = False  # the store went away after start: calls are skipped from then on
        self.offline_on_failure = offline_on_failure
        self.position = "the start of the run"  # where training is, for the offline warning
        self._checked = False
        if is_http(tracking_uri):
            bound_http_calls()

    def check(self, advice: str = START_SERVER) -> None:
        """Fail in seconds, with what to do (`advice` for an unreachable server), when the
        store cannot take this run.

        MLflow's own client retries a closed port with backoff for minutes; kexp asks once
        with a short timeout. A SQLite store only needs a folder kexp can write; other
        schemes are left to MLflow."""
        self._checked = True
        path = sqlite_path(self.tracking_uri)
        if is_http(self.tracking_uri):
            http_probe(self.tracking_uri, self.experiment, advice)
        elif path is not None:
            folder = next(p for p in (path.parent, *path.parent.parents) if p.exists())
            target = path if path.exists() else folder
            if not os.access(target, os.W_OK):
                raise KexpError(f"logger.tracking_uri: cannot write the SQLite store {path} "
                                f"({target} is not writable); point paths.log_dir or "
                                "logger.tracking_uri at a writable place, or use logger=none")

    def start(self, run_name: str, params: dict[str, Any], tags: dict[str, str],
              resume: str | None = None) -> None:
        """Start (or, given a run id in `resume`, reopen) the run; inside another active run,
        e.g. a search's parent run, it becomes a nested child run."""
        if not self._checked:
            self.check()
        try:
            self._start(run_name, params, tags, resume)
        except Exception:
            if is_http(self.tracking_uri):
                http_probe(self.tracking_uri, self.experiment)  # gone since check(): say so
            raise
        log.info("MLflow run %s in experiment '%s' at %s", self.run_id, self.experiment,
                 self.tracking_uri)

    def _start(self, run_name: str, params: dict[str, Any], tags: dict[str, str],
               resume: str | None) -> None:
        from mlflow.exceptions import MlflowException

        mlflow = self._mlflow
        with environment_kept():  # MLflow itself uses the URI it keeps in memory
            mlflow.set_tracking_uri(self.tracking_uri)
        # The first contact creates a new SQLite store: MLflow builds its tables with alembic
        # migrations, unguarded, so runs started at the same moment against a new mlflow.db
        # fail with "table ... already exists" / "duplicate column". One file lock per store
        # serializes that first contact and the experiment's creation; later writes are
        # ordinary SQLite transactions (MLflow waits up to 20 s on a busy database).
        with store_lock(self.tracking_uri):
            if mlflow.get_experiment_by_name(self.experiment) is None:
                location = self.artifact_root.resolve().as_uri() if self.artifact_root else None
                try:
                    mlflow.create_experiment(self.experiment, artifact_location=location)
                except MlflowException:
                    pass  # another process (e.g. a server's other client) created it first
            mlflow.set_experiment(self.experiment)
        run = _retry_locked(lambda: mlflow.start_run(
            run_id=resume, run_name=None if resume else run_name, tags=tags,
            nested=mlflow.active_run() is not None))
        self.run_id = run.info.run_id
        self.offline, self.position = False, "the start of the run"
        _retry_locked(lambda: mlflow.log_params(flatten(params)))

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self._call(lambda: self._mlflow.log_metrics(
            {k: float(v) for k, v in metrics.items()}, step=step))

    def log_params(self, params: dict[str, Any]) -> None:
        """Params known only once training has started (`resolved.steps_per_execution`
        under `auto`); MLflow refuses a changed value, so each is logged once per run."""
        self._call(lambda: self._mlflow.log_params(flatten(params)))

    def log_artifact(self, path: Path, folder: str | None = None) -> None:
        """A file among the run's artifacts (in `folder` of them, e.g. a language model's
        samples/)."""
        if Path(path).exists():
            self._call(lambda: self._mlflow.log_artifact(str(path), artifact_path=folder))

    def log_image(self, path: Path, key: str, step: int) -> None:
        """An image as one step of the image series `key` (the run page's slider over
        steps), e.g. a GAN's grid after each epoch."""
        if Path(path).exists():
            from PIL import Image

            with Image.open(path) as image:
                picture = image.copy()
            self._call(lambda: self._mlflow.log_image(picture, key=key, step=step))

    def log_model(self, model: keras.Model) -> None:
        """Log `model` as an MLflow Keras model with a signature (input and output shapes and
        dtypes), found by calling it on two all-zero inputs of its input spec: no data is
        drawn, so it works the same under any strategy (a multi-worker run's dataset cannot be
        iterated by the chief alone)."""
        if self.should_log_model:
            self._call(lambda: self._log_model(model))

    def _log_model(self, model: keras.Model) -> None:
        import keras
        import numpy as np
        import tensorflow as tf
        from mlflow.models import infer_signature

        # zeros of every input the model takes (a translator takes two)
        inputs = [np.zeros((2, *spec.shape[1:]), dtype=spec.dtype) for spec in model.inputs]
        x = inputs[0] if len(inputs) == 1 else {s.name: v for s, v in zip(model.inputs, inputs,
                                                                           strict=True)}
        # a direct call: model.predict would gather across the workers of a multi-worker run
        y = keras.ops.convert_to_numpy(model(x, training=False))
        # explicit requirements skip MLflow's slow inference by re-importing the model
        info = self._mlflow.keras.log_model(
            model, name="model", signature=infer_signature(x, y),
            pip_requirements=[f"tensorflow=={tf.__version__}", f"keras=={keras.__version__}"])
        if self.register_model:
            version = self._mlflow.register_model(info.model_uri, self.register_model)
            log.info("registered the model in MLflow's model registry: %s version %s",
                     version.name, version.version)

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
        if self.run_id is None:
            return
        if not self.offline:
            self._call(lambda: self._mlflow.end_run(status=status))
        if self.offline:
            self._forget_active_run()

    def callback(self) -> keras.callbacks.Callback:
        from kexp.tracking.callback import EpochMetrics

        return EpochMetrics(self)

    def _call(self, call: Callable[[], object]) -> None:
        """Run one logging call; the first failure switches the tracker offline for good.

        Any exception counts, whatever the store raised it as (MlflowException, requests',
        SQLAlchemy's, OSError): the run directory keeps everything, and a run that trains for
        hours must not die at the end because its tracking server did."""
        if self.offline or self.run_id is None:
            return
        try:
            with quiet_retries():
                call()
        except Exception as exc:
            if not self.offline_on_failure:
                raise
            self.offline = True
            upload = (f"upload it later with: python -m kexp.sync run_dir={self.run_dir}"
                      if self.run_dir else "its MLflow run stays incomplete")
            log.warning("MLflow store %s unreachable since %s (%s): training goes on; the run "
                        "directory keeps everything; %s", self.tracking_uri, self.position,
                        failure_reason(exc), upload)

    def _forget_active_run(self) -> None:
        """Drop this run from MLflow's active-run stack without asking the store: MLflow's
        exit hook would otherwise end it, and against a hung server wait for minutes; a next
        run in this process (a sweep, a search's trials) must not nest under it either."""
        from mlflow.tracking import fluent  # no public API pops the stack without the store

        stack = fluent._active_run_stack.get()
        if stack and stack[-1].info.run_id == self.run_id:
            stack.pop()


def _retry_locked(call: Callable[[], Any], attempts: int = 6) -> Any:
    """`call()`, again after 0.5, 1, 2, ... s while SQLite says the database is locked.

    MLflow already waits 20 s on a busy SQLite file, but SQLite refuses a writer at once,
    without waiting, when two connections both try to turn a read into a write; a retry
    of the whole call is the documented way out."""
    import time

    for attempt in range(attempts):
        try:
            return call()
        except Exception as exc:
            if "database is locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.5 * 2 ** attempt)


def make_tracker(logger_cfg: DictConfig, log_dir: Path, run_dir: Path | None = None) -> Tracker:
    """The tracker of `logger`: MLflow (`backend: mlflow`), TensorBoard (a `tensorboard`
    section, conf/logger/tensorboard.yaml), both behind one `Trackers` (logger=[mlflow,
    tensorboard]: one run, two viewers), or a `NullTracker` when neither is chosen."""
    from kexp.tracking.fanout import Trackers
    from kexp.tracking.tensorboard import TensorBoardTracker

    chosen: list[Tracker] = []
    mlflow_run = mlflow_tracker(logger_cfg, log_dir, run_dir)
    if mlflow_run is not None:
        chosen.append(mlflow_run)
    if logger_cfg.get("tensorboard") is not None:
        chosen.append(TensorBoardTracker(Path(log_dir), run_dir,
                                         histograms=logger_cfg.tensorboard.histograms))
    if not chosen:
        return NullTracker()
    return chosen[0] if len(chosen) == 1 else Trackers(chosen)


def mlflow_tracker(logger_cfg: DictConfig, log_dir: Path, run_dir: Path | None = None
                   ) -> MlflowTracker | None:
    """The MLflow tracker of `logger` (None unless `backend: mlflow`); its store defaults to
    <log_dir>/mlflow.db."""
    if logger_cfg.get("backend") != "mlflow":
        return None
    log_model = logger_cfg.get("log_model", True)
    register = logger_cfg.get("register_model")
    if logger_cfg.get("tracking_uri"):
        return MlflowTracker(logger_cfg.tracking_uri, logger_cfg.experiment, log_model,
                             run_dir=run_dir, register_model=register)
    # the default store keeps the database and the artifacts together under log_dir
    log_dir = Path(log_dir).resolve()
    log_dir.mkdir(parents=True, exist_ok=True)
    return MlflowTracker(f"sqlite:///{log_dir}/mlflow.db", logger_cfg.experiment, log_model,
                         artifact_root=log_dir / "mlartifacts", run_dir=run_dir,
                         register_model=register)


def checked_tracker(cfg: DictConfig) -> Tracker:
    """The run's tracker, its store checked (`Tracker.check`) unless this is a multi-worker
    run: there only the chief talks to the store, and it checks when the run starts.

    Cheap and free of TensorFlow: `python -m kexp` calls it before importing TensorFlow, so
    an unreachable store fails in a second or two, and train() calls it again."""
    tracker = make_tracker(cfg.logger, Path(cfg.paths.log_dir))
    if cfg.strategy.name != "multi_worker":
        tracker.check()
    return tracker


def run_tags(model_name: str, data_name: str, extra: dict[str, Any],
             commit: bool = True) -> dict[str, str]:
    """The tags every run carries: what it trained, on what, with which kexp and (`commit`)
    the commit of the checkout it starts in."""
    tags = {"model": model_name, "dataset": data_name, "kexp_version": kexp.__version__,
            **{str(k): str(v) for k, v in extra.items()}}
    found = git_commit(Path.cwd()) if commit else None
    if found:
        tags["git_commit"] = found
    return tags


def run_identity(cfg: DictConfig, kind: str = "run", trial_id: str | None = None,
                 commit: bool = True) -> tuple[str, dict[str, str]]:
    """The MLflow name and tags of a run of `cfg`, in one place for every kind of run:
    "run" (`run_name`, else <model>-<data>), "search" (tune-<tuner.project_name>, tagged
    kexp.search=parent) and "trial" (trial-<id>, tagged kexp.trial_id). `commit`: tag the
    checkout's commit (not for kexp.sync, whose checkout is not the run's)."""
    tags = run_tags(cfg.model.name, cfg.data.name, cfg.get("tags") or {}, commit=commit)
    if kind == "search":
        return f"tune-{cfg.tuner.project_name}", {**tags, "kexp.search": "parent"}
    if kind == "trial":
        return f"trial-{trial_id}", {**tags, "kexp.trial_id": str(trial_id)}
    return cfg.get("run_name") or f"{cfg.model.name}-{cfg.data.name}", tags


def git_commit(where: Path) -> str | None:
    """The commit of the checkout the run starts in, '+dirty' when it has changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True,
                              text=True, timeout=5, env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"})
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=where, capture_output=True, text=True, timeout=5,
                               env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"})
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.TimeoutExpired):
        return None
