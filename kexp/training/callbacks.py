"""Keras callbacks from the `callbacks` group, plus the two every run needs."""

from __future__ import annotations

import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import keras
from omegaconf import DictConfig

from kexp.training.backup import RunBackup

log = logging.getLogger("kexp")


class LearningRateLogger(keras.callbacks.Callback):
    """Adds the current learning rate to the epoch logs, so history.csv and MLflow see it."""

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs["learning_rate"] = float(
                keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


class PeriodicScores(keras.callbacks.Callback):
    """Scores of the model in training, put in the epoch logs every `every` epochs, the first
    and the last; a subclass computes them in `score()`. Between evaluations the last values
    are repeated, so early stopping and the checkpoint see a value every epoch and the history
    keeps one row per epoch; a resumed run repeats the last values before its kill (`names`:
    the logged keys to take from its `history`)."""

    def __init__(self, every: int, names: Sequence[str],
                 history: dict[str, list[float]] | None = None) -> None:
        super().__init__()
        self.every = int(every)
        self.last = {k: v[-1] for k, v in (history or {}).items() if k in names and v}

    def score(self) -> dict[str, float] | None:
        """The scores of the model now; None: none this time (the epoch logs keep the last)."""
        raise NotImplementedError

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.model.stop_training:  # a diverged run: the guard reports it, nothing to score
            return
        last_epoch = epoch + 1 == self.params.get("epochs")
        if not self.last or (epoch + 1) % self.every == 0 or last_epoch:
            found = self.score()
            if found is None:
                return
            self.last = found
        if logs is not None:
            logs.update(self.last)


class DataEpoch(keras.callbacks.Callback):
    """Tells the input pipeline which epoch begins, so the epoch alone picks its data order.

    `variable` is `DataBundle.epoch` (None: nothing to set). See kexp.data.stages.epoch_batches.
    """

    def __init__(self, variable: object | None) -> None:
        super().__init__()
        self.variable = variable

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if self.variable is not None:
            self.variable.assign(epoch)


class NonFiniteLossGuard(keras.callbacks.Callback):
    """Stops training at the first NaN/inf loss and remembers where it happened.

    Keras' TerminateOnNaN stops just as fast but leaves no trace a caller can report;
    the run is marked failed by whoever reads `failure` after `fit`.
    """

    def __init__(self) -> None:
        super().__init__()
        self.epoch = 0
        self.failure: str | None = None
        self._first_step: int | None = None

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch = epoch

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        self._first_step = batch + 1

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        # with steps_per_execution > 1 a call runs several steps and the logs are its last
        # step's: the running mean turned non-finite somewhere in that range
        first, last = self._first_step or batch + 1, batch + 1
        steps = f"step {last}" if first >= last else f"steps {first}-{last}"
        # every loss the step logs: "loss", or a model's own (a GAN's d_loss and g_loss)
        for name, value in (logs or {}).items():
            if name.endswith("loss") and not math.isfinite(float(value)):
                self.failure = (f"non-finite {name} ({float(value)}) at epoch {self.epoch + 1}, "
                                f"{steps}; lower optimizer.lr or add optimizer.clipnorm")
                self.model.stop_training = True
                return


class TimeBudget(keras.callbacks.Callback):
    """Stops training after the epoch that uses up `max_minutes` of training time.

    A shared machine or a CI job gives a run a fixed slot; cutting it at an epoch boundary lets
    the run still evaluate, save its model and end FINISHED, where a kill from outside would
    lose the epoch in progress and leave the run FAILED. The clock starts at on_train_begin, so
    building the model and loading data do not count; the epoch that crosses the budget is
    finished, so a run can overshoot by up to one epoch. `clock` (seconds) is there for tests.
    With `max_minutes` None the callback does nothing.
    """

    def __init__(self, max_minutes: float | None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.max_minutes = max_minutes
        self.clock = clock
        self.started: float | None = None
        self.stopped_on_time = False
        self.stopped_epoch: int | None = None  # 1-based number of the last epoch trained

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.started = self.clock()
        self.stopped_on_time = False
        self.stopped_epoch = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.max_minutes is None or self.started is None:
            return
        minutes = (self.clock() - self.started) / 60
        if minutes >= self.max_minutes:
            self.model.stop_training = True
            self.stopped_on_time = True
            self.stopped_epoch = epoch + 1
            log.info("time budget: %.1f of trainer.max_minutes=%g minutes used after epoch %d; "
                     "stopping training", minutes, self.max_minutes, epoch + 1)


class GracefulInterrupt(keras.callbacks.Callback):
    """The first Ctrl-C stops training after the current batch; a second one stops at once.

    A KeyboardInterrupt raised in the middle of a TensorFlow step can tear down tf.data
    iterators that background threads still use; under load that was seen to crash the
    process with heap corruption (SIGABRT) instead of ending the run cleanly.
    """

    def __init__(self) -> None:
        super().__init__()
        self.interrupted = False
        self._previous = None

    def on_train_begin(self, logs: dict | None = None) -> None:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self.interrupted:
            self.model.stop_training = True

    def on_train_end(self, logs: dict | None = None) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def _handle(self, signum: int, frame: object) -> None:
        if self.interrupted:  # asked twice: the user wants out now
            raise KeyboardInterrupt
        self.interrupted = True


class AtomicCheckpoint(keras.callbacks.ModelCheckpoint):
    """ModelCheckpoint that writes to a temporary name and renames: a kill or a full disk during
    a save leaves the previous best model whole (Keras writes the .keras zip in place)."""

    def _get_file_path(self, epoch: int, batch: int | None, logs: dict) -> str:
        final = Path(super()._get_file_path(epoch, batch, logs))
        return str(final.with_name(f".{final.stem}.tmp-{os.getpid()}{final.suffix}"))

    def _save_model(self, epoch: int, batch: int | None, logs: dict) -> None:
        tmp = Path(self._get_file_path(epoch, batch, logs))
        final = tmp.with_name(Path(super()._get_file_path(epoch, batch, logs)).name)
        try:
            super()._save_model(epoch, batch, logs)
            if tmp.exists():
                os.replace(tmp, final)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            log.warning("could not save the checkpoint %s (%s); the previous one is kept",
                        final, exc)


class CompleteEpochsCsv(keras.callbacks.CSVLogger):
    """CSVLogger that skips an epoch whose logs RunBackup cleared (cut short by Ctrl-C)."""

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs:
            super().on_epoch_end(epoch, logs)


def fit_callbacks(epoch_variable: object | None, guard: NonFiniteLossGuard,
                  logger: keras.callbacks.Callback, first: Sequence[keras.callbacks.Callback] = (),
                  between: Sequence[keras.callbacks.Callback] = ()
                  ) -> list[keras.callbacks.Callback]:
    """The callbacks of every fit, a run's and a tuning trial's alike, in the order their
    effects must apply: the epoch the data order is drawn for, `first` (a run's Ctrl-C
    handler and throughput clock), the learning rate into the logs, the non-finite-loss
    guard, `between` (a run's time budget and switchable callbacks with the backup; a trial's
    keras-tuner callbacks), and the tracker's `logger` last, so it logs what the others
    added."""
    return [DataEpoch(epoch_variable), *first, LearningRateLogger(), guard, *between, logger]


def build_callbacks(cfg: DictConfig, run_dir: Path, backup: RunBackup | None = None,
                    resumed: bool = False) -> list[keras.callbacks.Callback]:
    """The switchable callbacks, in the order their effects must apply.

    `backup` goes after the callbacks whose state it saves and before the CSV log.
    `resumed`: history.csv already holds the earlier epochs (appended to, not rewritten)."""
    callbacks: list[keras.callbacks.Callback] = []
    if cfg.early_stopping.enabled:
        es = cfg.early_stopping
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor=es.monitor, mode=es.get("mode", "auto"), patience=es.patience,
            min_delta=es.min_delta,
            restore_best_weights=es.restore_best_weights))
    if cfg.checkpoint.enabled:
        callbacks.append(AtomicCheckpoint(
            str(run_dir / "model.keras"), monitor=cfg.checkpoint.monitor,
            mode=cfg.checkpoint.mode, save_best_only=True))
    if cfg.reduce_lr.enabled:
        rl = cfg.reduce_lr
        callbacks.append(keras.callbacks.ReduceLROnPlateau(
            monitor=rl.monitor, mode=rl.get("mode", "auto"), factor=rl.factor,
            patience=rl.patience, min_lr=rl.min_lr))
    if backup is not None:
        backup.track(callbacks)
        callbacks.append(backup)
    if cfg.csv_logger.enabled:
        callbacks.append(CompleteEpochsCsv(str(run_dir / cfg.csv_logger.filename),
                                           append=resumed))
    return callbacks
