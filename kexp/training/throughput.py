"""Training throughput, measured the same way for kexp runs and for the benchmark's baselines."""

from __future__ import annotations

import statistics
import time

import keras


class Throughput(keras.callbacks.Callback):
    """Examples per second of the training part of each epoch (validation left out).

    An epoch's clock runs from `on_epoch_begin` to the validation pass that Keras starts inside
    the epoch (`on_test_begin`), or to `on_epoch_end` without one. The first epoch traces and
    compiles, so `per_second` is the median of the later epochs (the only one if there is one).

    `first_step_seconds` runs from `started` (a `time.perf_counter()` value; default: when the
    callback is made) to the end of the first training step, seen as the start of the second.
    Only begin-of-batch hooks are used, so the callback never asks Keras for a step's logs
    (on backends that dispatch batch-end hooks asynchronously, such a hook would force a wait).
    """

    def __init__(self, examples_per_epoch: int, started: float | None = None) -> None:
        super().__init__()
        self.examples_per_epoch = examples_per_epoch
        self.seconds: list[float] = []
        self.first_step_seconds: float | None = None
        self._origin = time.perf_counter() if started is None else started
        self._started: float | None = None
        self._calls = 0

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        self._calls += 1
        if self._calls == 2:
            self.first_step_seconds = time.perf_counter() - self._origin

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._started = time.perf_counter()

    def on_test_begin(self, logs: dict | None = None) -> None:
        self._stop()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self._stop()

    def _stop(self) -> None:
        if self.first_step_seconds is None:  # an epoch of a single step
            self.first_step_seconds = time.perf_counter() - self._origin
        if self._started is not None:  # an epoch's clock stops once
            self.seconds.append(time.perf_counter() - self._started)
            self._started = None

    @property
    def per_second(self) -> float:
        """Median examples/s over the epochs after the first; nan before any epoch ended."""
        timed = self.seconds[1:] or self.seconds
        return self.examples_per_epoch / statistics.median(timed) if timed else float("nan")
