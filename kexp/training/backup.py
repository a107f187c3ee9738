"""A run's training state on disk, so that `resume=<run_dir>` continues where a kill stopped it.

After every complete epoch (and, with `trainer.backup.every_n_steps`, every N steps) RunBackup
writes one file, `<run_dir>/backup/state.npz`: every model and optimizer variable (weights,
optimizer slots and step count, dropout seed states), the per-epoch history so far, the state
of the callbacks that remember across epochs (early stopping, checkpoint, LR plateau) and the
seconds spent. It is written under a temporary name and renamed, so a kill or a full disk in
the middle of a write leaves the previous backup whole.

Keras' own BackupAndRestore keeps weights and epoch only (not the other callbacks' state, not
the history) in two files written in place; kexp needs all of it to end a resumed run with the
metrics and history of an uninterrupted one.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

log = logging.getLogger("kexp")

BACKUP_DIR = "backup"
STATE_FILE = "state.npz"

# what each stateful callback remembers between epochs (reset by its on_train_begin)
_CALLBACK_STATE: dict[type, tuple[str, ...]] = {
    keras.callbacks.EarlyStopping: ("wait", "best", "best_epoch", "stopped_epoch"),
    keras.callbacks.ModelCheckpoint: ("best",),
    keras.callbacks.ReduceLROnPlateau: ("wait", "best", "cooldown_counter"),
}


@dataclass
class Saved:
    """A backup as read back: where training stands and what it has seen."""

    epoch: int  # epochs complete; the resumed fit starts at this (0-based) epoch
    step: int  # > 0: written in the middle of epoch `epoch` after this many steps
    history: dict[str, list[float]]
    seconds: float
    callbacks: list[dict[str, Any]] = field(default_factory=list)
    model_values: list[np.ndarray] = field(default_factory=list)
    optimizer_values: list[np.ndarray] = field(default_factory=list)
    best_weights: list[np.ndarray] | None = None


def load(run_dir: Path) -> Saved | None:
    """The backup in `run_dir`, or None when there is none."""
    path = Path(run_dir) / BACKUP_DIR / STATE_FILE
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as arrays:
        meta = json.loads(str(arrays["meta"]))
        values = {name: arrays[name] for name in arrays.files if name != "meta"}

    def group(prefix: str, count: int) -> list[np.ndarray]:
        return [values[f"{prefix}{i}"] for i in range(count)]

    counts = meta["counts"]
    return Saved(epoch=meta["epoch"], step=meta["step"], history=meta["history"],
                 seconds=meta["seconds"], callbacks=meta["callbacks"],
                 model_values=group("model_", counts["model"]),
                 optimizer_values=group("optimizer_", counts["optimizer"]),
                 best_weights=group("best_", counts["best"]) if counts["best"] else None)


def optimizers_of(model: keras.Model) -> list[keras.optimizers.Optimizer]:
    """Every optimizer a backup keeps: a model trained by several (a GAN's generator and
    discriminator) lists them in its `optimizers` attribute; any other has `model.optimizer`."""
    return list(getattr(model, "optimizers", None) or [model.optimizer])


def optimizer_variables(model: keras.Model) -> list:
    return [v for optimizer in optimizers_of(model) for v in optimizer.variables]


def restore_variables(model: keras.Model, saved: Saved) -> None:
    """Put the backed-up weights, seed states and optimizer state into a freshly compiled model."""
    if len(saved.model_values) != len(model.variables):
        raise ValueError(f"the backup holds {len(saved.model_values)} model variables, the "
                         f"model has {len(model.variables)}: was the config changed?")
    for optimizer in optimizers_of(model):
        if not optimizer.built:  # one optimizer of several builds on its own model's weights
            optimizer.build(model.trainable_variables)
    for variable, value in zip(model.variables, saved.model_values, strict=True):
        variable.assign(value)
    for variable, value in zip(optimizer_variables(model), saved.optimizer_values, strict=True):
        variable.assign(value)


class RunBackup(keras.callbacks.Callback):
    """Writes the training state after each complete epoch (and every `every_n_steps` steps).

    Place it after the callbacks whose state it saves and before those that log an epoch
    (CSV, MLflow): an epoch is then logged only once its backup is on disk, and the logs of an
    epoch cut short by Ctrl-C are cleared, so nothing logs a partial epoch that a resumed run
    would log again. `history` holds every complete epoch, those of earlier processes too.
    """

    def __init__(self, run_dir: Path, every_n_steps: int | None = None,
                 restored: Saved | None = None) -> None:
        super().__init__()
        self.path = Path(run_dir) / BACKUP_DIR / STATE_FILE
        self.stateful: list[keras.callbacks.Callback] = []
        self.every_n_steps = every_n_steps
        self.restored = restored
        self.history: dict[str, list[float]] = dict(restored.history) if restored else {}
        self.seconds_before = restored.seconds if restored else 0.0
        self._epoch = 0
        self._steps = 0
        self._last_saved_step = 0
        self._started = 0.0
        self._failed_once = False

    def track(self, callbacks: list[keras.callbacks.Callback]) -> None:
        """Save (and restore) the state of these callbacks: those placed before this one."""
        self.stateful = [c for c in callbacks if type(c) in _CALLBACK_STATE]

    def on_train_begin(self, logs: dict | None = None) -> None:
        import time

        self._started = time.perf_counter()
        if self.restored is None:
            return
        for callback, state in zip(self.stateful, self.restored.callbacks, strict=False):
            for name, value in state.items():
                setattr(callback, name, value)
            if isinstance(callback, keras.callbacks.EarlyStopping):
                callback.best_weights = self.restored.best_weights

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch, self._steps, self._last_saved_step = epoch, 0, 0

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self._steps = batch + 1
        if self.every_n_steps and self._steps - self._last_saved_step >= self.every_n_steps:
            self._last_saved_step = self._steps
            if self._steps < self.params.get("steps", math.inf):
                self.save(epoch=self._epoch, step=self._steps)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        complete = self._steps >= (self.params.get("steps") or self._steps)
        finite = all(math.isfinite(float(v)) for v in (logs or {}).values()
                     if isinstance(v, (int, float, np.floating)))
        if not complete or not finite:
            if logs is not None:
                logs.clear()  # a cut-short or diverged epoch is neither backed up nor logged
            return
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        self.save(epoch=epoch + 1, step=0)

    def discard(self) -> None:
        """Remove the backup: the run finished, nothing is left to resume."""
        import shutil

        shutil.rmtree(self.path.parent, ignore_errors=True)

    @property
    def seconds(self) -> float:
        import time

        return self.seconds_before + time.perf_counter() - self._started

    def save(self, epoch: int, step: int) -> None:
        """Write the state atomically; a failed write (disk full) keeps the previous backup."""
        model = self.model
        best = next((c.best_weights for c in self.stateful
                     if isinstance(c, keras.callbacks.EarlyStopping)), None) or []
        arrays: dict[str, np.ndarray] = {}
        for prefix, values in (("model_", [v.numpy() for v in model.variables]),
                               ("optimizer_", [v.numpy() for v in optimizer_variables(model)]),
                               ("best_", list(best))):
            arrays.update({f"{prefix}{i}": np.asarray(v) for i, v in enumerate(values)})
        meta = {"epoch": epoch, "step": step, "history": self.history,
                "seconds": round(self.seconds, 3),
                "callbacks": [{name: _plain(getattr(c, name)) for name in _CALLBACK_STATE[type(c)]}
                              for c in self.stateful],
                "counts": {"model": len(model.variables),
                           "optimizer": len(optimizer_variables(model)), "best": len(best)}}
        buffer = io.BytesIO()
        np.savez(buffer, meta=np.array(json.dumps(meta)), **arrays)
        try:
            atomic_write(self.path, buffer.getvalue())
        except OSError as exc:
            if not self._failed_once:
                log.warning("could not write the backup %s (%s); the previous one is kept and "
                            "training goes on", self.path, exc)
            self._failed_once = True


def write_history_csv(path: Path, history: dict[str, list[float]]) -> None:
    """history.csv as Keras' CSVLogger writes it (epoch, then the keys sorted), for the epochs
    in `history` only: a resumed run appends to it, and no epoch appears twice."""
    import csv

    keys = sorted(history)
    rows = zip(*(history[k] for k in keys), strict=True) if keys else []
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["epoch", *keys])
    for epoch, values in enumerate(rows):
        writer.writerow([epoch, *values])
    atomic_write(path, out.getvalue().encode())


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file and a rename: readers see the old file
    or the new one, never half of one (the temporary is removed if the write fails)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _plain(value: Any) -> Any:
    """A JSON-able copy of a callback attribute (numpy scalars become floats; None stays)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return float(value)
