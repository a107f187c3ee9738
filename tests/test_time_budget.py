"""trainer.max_minutes: TimeBudget stops training after the epoch that uses up the budget.

The clock is one the test moves itself (3 minutes an epoch), so nothing here depends on how
fast this machine trains.
"""

from __future__ import annotations

import logging

import keras
import numpy as np
import pytest
import tensorflow as tf

from kexp.training.callbacks import TimeBudget

EPOCHS = 100
MINUTES_PER_EPOCH = 3


class FakeClock:
    """Seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class AdvanceClock(keras.callbacks.Callback):
    """Moves the clock on at each epoch's end, as if the epoch had taken `minutes`."""

    def __init__(self, clock: FakeClock, minutes: float) -> None:
        super().__init__()
        self.clock, self.minutes = clock, minutes

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.clock.now += 60 * self.minutes


def fit(budget: TimeBudget, clock: FakeClock) -> keras.callbacks.History:
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(16, 3)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile(optimizer="sgd", loss="mse")
    # a tf.data dataset: Keras rebuilds one from numpy arrays every epoch (10x slower here)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(16).cache()
    # AdvanceClock before TimeBudget: the budget sees each epoch's time at that epoch's end
    return model.fit(data, epochs=EPOCHS, verbose=0, shuffle=False,
                     callbacks=[AdvanceClock(clock, MINUTES_PER_EPOCH), budget])


def test_training_stops_after_the_epoch_that_passes_the_budget(caplog):
    clock = FakeClock()
    budget = TimeBudget(max_minutes=10, clock=clock)
    with caplog.at_level(logging.INFO, logger="kexp"):
        history = fit(budget, clock)
    # 3, 6, 9 minutes: under 10; the 4th epoch ends at 12 >= 10
    assert len(history.history["loss"]) == 4
    assert budget.stopped_on_time is True
    assert budget.stopped_epoch == 4
    lines = [r.getMessage() for r in caplog.records if r.name == "kexp"]
    assert len(lines) == 1 and "max_minutes" in lines[0], lines


def test_a_budget_reached_exactly_stops_at_that_epoch():
    clock = FakeClock()
    budget = TimeBudget(max_minutes=9, clock=clock)
    assert len(fit(budget, clock).history["loss"]) == 3
    assert budget.stopped_epoch == 3


def test_no_budget_trains_every_epoch():
    clock = FakeClock()
    budget = TimeBudget(max_minutes=None, clock=clock)
    history = fit(budget, clock)
    assert len(history.history["loss"]) == EPOCHS
    assert budget.stopped_on_time is False
    assert budget.stopped_epoch is None


@pytest.mark.parametrize("max_minutes", [0.5, 2])
def test_the_first_epoch_always_finishes(max_minutes):
    clock = FakeClock()
    budget = TimeBudget(max_minutes=max_minutes, clock=clock)
    assert len(fit(budget, clock).history["loss"]) == 1
    assert budget.stopped_epoch == 1


def test_a_run_out_of_time_still_evaluates_saves_and_says_so(tmp_path, monkeypatch):
    """trainer.max_minutes through the recipe, on a clock this test moves: 30 s per reading
    (the start, then each epoch's end), so a 1-minute budget ends the run after epoch 2."""
    import functools
    import itertools
    import json

    from kexp import recipe
    from tests.conftest import compose_train

    readings = itertools.count(0.0, 30.0)
    monkeypatch.setattr(recipe, "TimeBudget",
                        functools.partial(recipe.TimeBudget, clock=lambda: next(readings)))
    metrics = recipe.train(compose_train(["trainer.max_minutes=1", "trainer.epochs=50",
                                          "trainer.verbose=0", "logger=none",
                                          f"paths.log_dir={tmp_path}"]))
    assert metrics["epochs"] == 2 and metrics["stopped_on_time"] is True
    (folder,) = (tmp_path / "runs").iterdir()
    saved = json.loads((folder / "metrics.json").read_text())
    assert saved["stopped_on_time"] is True and saved["test_accuracy"] > 0.5
    assert (folder / "model.keras").is_file()
