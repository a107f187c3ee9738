"""Logging a finished run directory into MLflow after the fact (`python -m kexp.sync`).

A run whose tracking store went away keeps everything in its directory; this puts the same
things in MLflow that a live run logs: params (the flattened config.yaml), per-epoch metrics
(history.csv, step = epoch index), the run card and final metrics (metrics.json), tags,
artifacts and the model. It logs into the run's own MLflow run when the store has it (the
run directory's `mlflow_run_id`) and only what that run lacks, so syncing twice changes
nothing the second time.
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
from omegaconf import DictConfig, OmegaConf

from kexp import run_dir as outputs
from kexp.errors import KexpError
from kexp.tracking.params import flatten
from kexp.tracking.store import failure_reason, store_lock
from kexp.tracking.tracker import (
    CARD_METRICS,
    MlflowTracker,
    final_metrics,
    make_tracker,
    run_identity,
)

log = logging.getLogger(__name__)


@dataclass
class SyncReport:
    """What one sync did; `new_*` count what was missing from the MLflow run."""

    run_id: str
    experiment: str
    tracking_uri: str
    resumed: bool
    new_params: int = 0
    new_metric_values: int = 0
    artifacts: list[str] = field(default_factory=list)
    model_logged: bool = False

    def line(self, folder: Path) -> str:
        how = "into its MLflow run" if self.resumed else "into a new MLflow run"
        model = ", the model" if self.model_logged else ""
        return (f"synced {folder} {how} {self.run_id} (experiment '{self.experiment}' at "
                f"{self.tracking_uri}): {self.new_params} new params, {self.new_metric_values} "
                f"new metric values, {len(self.artifacts)} artifacts{model}")


def sync_run_dir(folder: Path, tracking_uri: str | None = None, experiment: str | None = None,
                 log_model: bool | None = None) -> SyncReport:
    """Log the finished run in `folder` into MLflow. None: as the run itself was configured
    (its store, experiment and logger.log_model)."""
    folder = Path(folder)
    for name in (outputs.CONFIG_FILE, outputs.METRICS_FILE):
        if not (folder / name).is_file():
            raise KexpError(f"run_dir: '{folder}' has no {name}, so it is not a finished kexp "
                            "run; pass the directory of a run that ended (it holds config.yaml "
                            "and metrics.json)")
    cfg = OmegaConf.load(folder / outputs.CONFIG_FILE)
    metrics = json.loads((folder / outputs.METRICS_FILE).read_text())
    logger = OmegaConf.create({
        "backend": "mlflow",
        "tracking_uri": tracking_uri or cfg.logger.get("tracking_uri"),
        "experiment": experiment or cfg.logger.get("experiment") or "kexp",
        "log_model": cfg.logger.get("log_model", True) if log_model is None else log_model})
    tracker = make_tracker(logger, _log_dir(cfg, folder), run_dir=folder)
    assert isinstance(tracker, MlflowTracker)
    tracker.offline_on_failure = False  # here the upload is the job: a failure must say so
    tracker.check(advice="start the server, or pass logger.tracking_uri=<a store that is up>")
    try:
        return _sync(tracker, folder, cfg, metrics)
    except KexpError:
        raise
    except Exception as exc:
        tracker.offline = True  # leave the half-synced run RUNNING, without asking the store
        tracker.finish("FAILED")
        raise KexpError(f"sync: the MLflow store {tracker.tracking_uri} failed "
                        f"({failure_reason(exc)}); run kexp.sync again when it is back: it "
                        "continues where this one stopped") from exc


def _sync(tracker: MlflowTracker, folder: Path, cfg: DictConfig,
          metrics: dict[str, Any]) -> SyncReport:
    client = mlflow.MlflowClient(tracker.tracking_uri)
    existing = _existing_run(client, tracker, folder)
    if existing is not None:  # a run started in another experiment is continued where it is
        tracker.experiment = client.get_experiment(existing.info.experiment_id).name
    params = flatten(OmegaConf.to_container(cfg, resolve=True))
    logged_params = existing.data.params if existing else {}
    new_params = {k: v for k, v in params.items() if k not in logged_params}
    name, tags = run_identity(cfg, commit=False)  # the checkout kexp.sync runs in is not the run's
    tracker.start(run_name=name, params=new_params, tags={**tags, "kexp.synced": "true"},
                  resume=existing.info.run_id if existing else None)
    outputs.write_run_id(tracker.run_id, folder)
    report = SyncReport(tracker.run_id, tracker.experiment, tracker.tracking_uri,
                        resumed=existing is not None, new_params=len(new_params))

    def logged_steps(key: str) -> set[int]:
        if existing is None:
            return set()
        return {m.step for m in client.get_metric_history(tracker.run_id, key)}

    history = folder / cfg.callbacks.csv_logger.filename
    by_step = _history(history)
    if not by_step:
        log.warning("%s holds no per-epoch history; only the final metrics are synced", history)
    done = {key: logged_steps(key) for key in {k for row in by_step.values() for k in row}}
    for step, row in sorted(by_step.items()):
        new = {k: v for k, v in row.items() if step not in done[k]}
        if new:
            tracker.log_metrics(new, step=step)
            report.new_metric_values += len(new)
    final = {k: v for k, v in {**{k: metrics[k] for k in CARD_METRICS if k in metrics},
                               **final_metrics(metrics)}.items() if not logged_steps(k)}
    if final:
        tracker.log_metrics(final)
        report.new_metric_values += len(final)

    for name in (outputs.CONFIG_FILE, outputs.METRICS_FILE, outputs.SUMMARY_FILE,
                 outputs.CURVES_FILE, cfg.callbacks.csv_logger.filename,
                 outputs.VOCABULARY_FILE):
        if (folder / name).is_file():
            tracker.log_artifact(folder / name)  # the same path again overwrites: no duplicate
            report.artifacts.append(name)
    model_file = folder / outputs.MODEL_FILE
    if tracker.should_log_model and model_file.is_file() and not _has_model(client, tracker):
        from kexp.environment import import_tensorflow_quietly

        import_tensorflow_quietly()
        from kexp.models import load_model

        tracker.log_model(load_model(model_file))
        report.model_logged = True
    tracker.finish("FINISHED")
    return report


def _existing_run(client: Any, tracker: MlflowTracker, folder: Path) -> Any:
    """The MLflow run the run directory names, if the target store has it (and it is not
    deleted); None otherwise: a run of another store, or a run whose start was never
    recorded, gets a new one."""
    run_id = outputs.read_run_id(folder)
    if not run_id:
        return None
    from mlflow.exceptions import MlflowException

    with store_lock(tracker.tracking_uri):  # may be this store's first contact: see start()
        try:
            run = client.get_run(run_id)
        except MlflowException:
            return None
    return None if run.info.lifecycle_stage == "deleted" else run


def _has_model(client: Any, tracker: MlflowTracker) -> bool:
    """Whether the run already has a finished logged model (a half-uploaded one is redone)."""
    run = client.get_run(tracker.run_id)
    found = client.search_logged_models(
        [run.info.experiment_id], filter_string=f"source_run_id = '{tracker.run_id}'")
    return any(str(model.status) == "READY" for model in found)


def _history(path: Path) -> dict[int, dict[str, float]]:
    """history.csv (Keras' CSVLogger: an `epoch` column from 0, then one column per logged
    metric) as {epoch: {metric: value}}; empty cells are left out."""
    if not path.is_file():
        return {}
    rows: dict[int, dict[str, float]] = {}
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            step = int(row.pop("epoch"))
            rows[step] = {k: float(v) for k, v in row.items() if k and v not in ("", None)}
    return rows


def _log_dir(cfg: DictConfig, folder: Path) -> Path:
    """The run's paths.log_dir (where its default SQLite store is), found from the run
    directory when it was relative, so kexp.sync works from any directory."""
    log_dir = Path(cfg.paths.log_dir)
    if log_dir.is_absolute():
        return log_dir
    for parent in folder.resolve().parents:
        if parent.parts[-len(log_dir.parts):] == log_dir.parts:
            return parent
    return log_dir
