"""Continuing a killed run in its own directory: what train() does differently when it resumes.

`python -m kexp resume=<run_dir>` (or the first command again with `hydra.run.dir=<run_dir>`)
runs train() in a directory that already holds a backup (kexp.training.backup). The model is
built and compiled as before, then gets the backed-up variables; fit starts at the next epoch;
history.csv and MLflow get exactly the epochs the backup holds, so no epoch is missing or
logged twice, whichever moment the kill came at.
"""

from __future__ import annotations

import logging
from pathlib import Path

import keras
from omegaconf import DictConfig

from kexp import run_dir
from kexp.errors import KexpError
from kexp.training.backup import RunBackup, Saved, load, restore_variables, write_history_csv

log = logging.getLogger("kexp")


def previous(out: Path) -> Saved | None:
    """The backup a killed run left in `out`; an error if `out` holds a finished run."""
    if (out / run_dir.METRICS_FILE).exists():
        raise KexpError(f"{out} holds a finished run ({run_dir.METRICS_FILE} is there); there "
                        f"is nothing to resume: start a new run instead")
    try:
        return load(out)
    except (OSError, ValueError, KeyError) as exc:
        raise KexpError(f"{out}: its backup cannot be read ({exc}); move {out}/backup away "
                        f"to start the run over") from None


def prepare(model: keras.Model, cfg: DictConfig, out: Path, saved: Saved | None,
            tracker: object) -> RunBackup | None:
    """The RunBackup for this run (None with trainer.backup.enabled=false), with the model,
    history.csv and the MLflow run brought to where the backup `saved` left off."""
    backup_cfg = cfg.trainer.get("backup") or {}
    if saved is not None:
        try:
            restore_variables(model, saved)
        except ValueError as exc:
            raise KexpError(f"{out}: the backup does not fit this model ({exc})") from None
        if cfg.callbacks.csv_logger.enabled:
            write_history_csv(out / cfg.callbacks.csv_logger.filename, saved.history)
        backfill(tracker, saved.history)
        where = f"epoch {saved.epoch + 1}" + (f" (the backup of step {saved.step} restarts it)"
                                              if saved.step else "")
        log.info("resuming %s at %s of %d", out, where, cfg.trainer.epochs)
    if not backup_cfg.get("enabled", False):
        return None
    return RunBackup(out, backup_cfg.get("every_n_steps"), restored=saved)


def backfill(tracker: object, history: dict[str, list[float]]) -> None:
    """Log the backed-up epochs the MLflow run lacks: the killed process can die after writing
    a backup and before logging that epoch (the backup is written first)."""
    uri, run_id = getattr(tracker, "tracking_uri", None), getattr(tracker, "run_id", None)
    if not uri or not run_id or not history:
        return
    import mlflow

    try:
        # any per-epoch key says which epochs are logged: the first the history holds
        key = next(iter(history))
        logged = {m.step for m in mlflow.MlflowClient(uri).get_metric_history(run_id, key)}
    except Exception as exc:  # the store went away: the run goes on; kexp.sync logs it later
        log.warning("could not read the logged epochs from %s (%s); the missing ones are "
                    "left to python -m kexp.sync", uri, str(exc).splitlines()[0])
        return
    epochs = len(next(iter(history.values())))
    for epoch in range(epochs):
        if epoch not in logged:
            tracker.log_metrics({k: v[epoch] for k, v in history.items()}, step=epoch)
