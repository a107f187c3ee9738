"""`trainer.steps_per_execution: auto`: kexp picks how many training steps one `tf.function`
call runs, from the measured time of this run's own first steps.

Keras runs one Python round trip per call (the epoch iterator, the callbacks' batch hooks,
the progress bar, unwrapping an Optional); for a small model on a CPU that round trip costs as
much as the step itself (docs/benchmarks.md: an MLP trained 1.9x faster at 16 steps a call).
Many steps a call hide it, but every batch-level hook (the progress bar, the non-finite-loss
guard, Ctrl-C, `trainer.backup.every_n_steps`) then acts once a call. So `auto` runs the
first epoch of a process one step a call, timing the steps after the two that trace, and from
the second epoch on runs as many steps a call as fill about `CALL_SECONDS`: enough that the
round trip is a small share of it, few enough that those hooks still answer within a
fraction of a second; never more than an epoch's steps. Steps so long that fewer than
`MIN_STEPS` fill that time stay at 1 (switching traces the compiled functions again, which
such a step's small share of per-call work does not pay back), as does an epoch too short to
time; so do 2+ replicas, where Keras' fit crashes with more (keras-team/keras#19246:
`settings.resolve` decides that before compiling).

The number of steps a call does not change what is computed (the same ops on the same
batches: tests/test_stepping.py checks the weights bit for bit), so a resumed run, which
measures again, still equals an uninterrupted one.

Switching means two `fit` calls, the first epoch and the rest. The callbacks see one: they
share a `FitCallbacks` that passes `on_train_begin` on once and `on_train_end` once at the end.
"""

from __future__ import annotations

import logging
import math
import statistics
import time
from collections.abc import Sequence
from typing import Any

import keras
import tensorflow as tf

log = logging.getLogger("kexp")

AUTO = "auto"
# the wall time one call of `auto` aims at
CALL_SECONDS = 0.25
# steps timed in the first epoch; the first two trace the training function and are not timed
TIMED_STEPS = 50
# fewer steps a call than this stay at 1: a step then takes over CALL_SECONDS / 4 (62 ms), of
# which Keras' per-call work (~2 ms on a 2-core CPU, docs/benchmarks.md) is under 3%, less than
# tracing the training and validation functions again costs a run of a few epochs
MIN_STEPS = 4


class StepClock(keras.callbacks.Callback):
    """The median seconds between the starts of consecutive training steps in the first
    epoch it sees (one step a call), leaving out the two that trace; None until three steps
    have started. Only begin-of-batch hooks are used, as in `Throughput`."""

    def __init__(self, clock: Any = time.perf_counter) -> None:
        super().__init__()
        self.clock = clock
        self.starts: list[float] = []
        self._epochs = 0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._epochs += 1

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        if self._epochs == 1 and len(self.starts) < TIMED_STEPS + 2:
            self.starts.append(self.clock())

    @property
    def step_seconds(self) -> float | None:
        gaps = [b - a for a, b in zip(self.starts[1:], self.starts[2:], strict=False)]
        return statistics.median(gaps) if gaps else None


def choose(step_seconds: float | None, steps_per_epoch: int | None,
           call_seconds: float = CALL_SECONDS) -> int:
    """The steps per call that fill about `call_seconds`, at most an epoch's steps; 1 when
    the step time is unknown or that number is under `MIN_STEPS`."""
    if not step_seconds or step_seconds <= 0:
        return 1
    steps = math.floor(call_seconds / step_seconds)
    if steps < MIN_STEPS:
        return 1
    return min(steps, steps_per_epoch) if steps_per_epoch else steps


class FitCallbacks(keras.callbacks.CallbackList):
    """Keras' CallbackList, shared by consecutive `fit` calls that make one training: the
    first `on_train_begin` is passed on, the others are not, and `on_train_end` waits for
    `finish()` (so History, the time budget and the Ctrl-C handler span both fits)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._begun = False
        self._end_logs: dict | None = None

    def on_train_begin(self, logs: dict | None = None) -> None:
        if not self._begun:
            self._begun = True
            super().on_train_begin(logs)

    def on_train_end(self, logs: dict | None = None) -> None:
        self._end_logs = logs

    def finish(self) -> None:
        super().on_train_end(self._end_logs)


def batches_per_epoch(dataset: Any) -> int | None:
    """The steps of one epoch over `dataset`, as Keras counts them (None: not known)."""
    if isinstance(dataset, tf.data.Dataset):
        cardinality = int(dataset.cardinality())
        return cardinality if cardinality > 0 else None
    return None


def set_steps_per_execution(model: keras.Model, steps: int) -> None:
    """Run `steps` steps per call from the next `fit`/`evaluate` on: the compiled functions
    are made again, since each reads the number when it is traced."""
    model.steps_per_execution = steps
    model.train_function = model.test_function = model.predict_function = None


def fit(model: keras.Model, train: Any, *, auto: bool, epochs: int, initial_epoch: int = 0,
        callbacks: Sequence[keras.callbacks.Callback] = (), verbose: int = 2,
        validation_data: Any = None) -> keras.callbacks.History:
    """`model.fit(train, ...)` (the pipeline shuffles, so `shuffle=False`); with `auto`, the
    steps per call are chosen after the first epoch and logged, and `model.steps_per_execution`
    says what the later epochs ran. Returns the History."""
    if not auto or epochs - initial_epoch < 2:
        return model.fit(train, validation_data=validation_data, epochs=epochs,
                         initial_epoch=initial_epoch, callbacks=list(callbacks),
                         verbose=verbose, shuffle=False)
    steps = batches_per_epoch(train)
    clock = StepClock()
    calls = FitCallbacks([clock, *callbacks], add_history=True, add_progbar=verbose != 0,
                         model=model, verbose=verbose, epochs=epochs, steps=steps)
    model.fit(train, validation_data=validation_data, epochs=initial_epoch + 1,
              initial_epoch=initial_epoch, callbacks=calls, verbose=verbose, shuffle=False)
    if not model.stop_training:
        chosen = choose(clock.step_seconds, steps)
        log.info("trainer.steps_per_execution=auto: %d step(s) per call (a step took %s in "
                 "the first epoch; %d per epoch)", chosen,
                 f"{clock.step_seconds * 1000:.1f} ms" if clock.step_seconds else "unknown",
                 steps or 0)
        if chosen > 1:
            set_steps_per_execution(model, chosen)
        model.fit(train, validation_data=validation_data, epochs=epochs,
                  initial_epoch=initial_epoch + 1, callbacks=calls, verbose=verbose,
                  shuffle=False)
    calls.finish()
    return model.history
