"""trainer.steps_per_execution=auto (kexp/training/stepping.py): the same training whatever
the steps per call, one training as the callbacks see it across the switch, and the hooks
that act per call (the non-finite guard, Ctrl-C) still correct."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from kexp.training import stepping
from kexp.training.callbacks import GracefulInterrupt, NonFiniteLossGuard
from tests.test_strategies import settings

STEPS = 12  # batches of one epoch


def dataset(poison_at: int | None = None) -> tf.data.Dataset:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(STEPS * 16, 8)).astype("float32")
    y = rng.integers(0, 3, size=STEPS * 16).astype("int32")
    if poison_at is not None:  # a NaN input in batch `poison_at` (0-based) of every epoch
        x[poison_at * 16] = np.nan
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(16)


def model(steps_per_execution: int = 1) -> keras.Model:
    # tanh, not relu: TensorFlow fuses MatMul+BiasAdd+Relu in the compiled step, and on some
    # CPUs (this VM's AVX-512 oneDNN path) that ReLU maps NaN to 0, so the poison would vanish
    keras.utils.set_random_seed(1)
    net = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="tanh"),
                            keras.layers.Dropout(0.3, seed=3), keras.layers.Dense(3)])
    net.compile(optimizer=keras.optimizers.Adam(0.01),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                metrics=["accuracy"], steps_per_execution=steps_per_execution)
    return net


class Counts(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.begins = self.ends = 0
        self.batches: list[int] = []

    def on_train_begin(self, logs=None):
        self.begins += 1

    def on_train_end(self, logs=None):
        self.ends += 1

    def on_train_batch_end(self, batch, logs=None):
        self.batches.append(batch)


def test_the_steps_per_call_change_nothing_that_is_computed():
    """Why a timing-dependent choice keeps runs repeatable and resumes exact: 1 step a call
    and 5 give the same weights bit for bit (dropout draws included)."""
    one, five = model(1), model(5)
    one.fit(dataset(), epochs=3, verbose=0, validation_data=dataset())
    five.fit(dataset(), epochs=3, verbose=0, validation_data=dataset())
    for a, b in zip(one.get_weights(), five.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_auto_switches_after_the_first_epoch_and_the_callbacks_see_one_training(monkeypatch):
    monkeypatch.setattr(stepping, "CALL_SECONDS", 1e6)  # as many steps a call as an epoch has
    plain, auto = model(), model()
    plain.fit(dataset(), epochs=4, verbose=0, validation_data=dataset())
    counts = Counts()
    history = stepping.fit(auto, dataset(), auto=True, epochs=4, callbacks=[counts],
                           verbose=0, validation_data=dataset())
    assert auto.steps_per_execution == STEPS  # capped at an epoch's steps
    assert (counts.begins, counts.ends) == (1, 1)
    assert len(history.history["loss"]) == 4 and len(history.history["val_loss"]) == 4
    # the first epoch one step a call, then one call an epoch
    assert counts.batches == list(range(STEPS)) + [STEPS - 1] * 3
    for a, b in zip(plain.get_weights(), auto.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert auto.evaluate(dataset(), verbose=0) == pytest.approx(
        plain.evaluate(dataset(), verbose=0), rel=1e-6)  # validation read every batch


def test_the_choice_fills_the_call_time_and_never_passes_an_epoch():
    assert stepping.choose(0.001, steps_per_epoch=1000, call_seconds=0.25) == 250
    assert stepping.choose(0.001, steps_per_epoch=40, call_seconds=0.25) == 40
    assert stepping.choose(0.5, steps_per_epoch=1000, call_seconds=0.25) == 1  # a long step
    # two or three steps a call would not pay back tracing the functions again
    assert stepping.choose(0.1, steps_per_epoch=1000, call_seconds=0.25) == 1
    assert stepping.choose(0.06, steps_per_epoch=1000, call_seconds=0.25) == 4
    assert stepping.choose(0.06, steps_per_epoch=3, call_seconds=0.25) == 3  # an epoch's
    assert stepping.choose(None, steps_per_epoch=1000) == 1  # an epoch too short to time
    clock = stepping.StepClock(clock=iter([0.0, 5.0, 5.1, 5.2, 5.4]).__next__)
    clock.on_epoch_begin(0)
    for batch in range(5):
        clock.on_train_batch_begin(batch)
    assert clock.step_seconds == pytest.approx(0.1)  # the tracing steps left out


def test_the_guard_names_the_steps_of_the_call_that_turned_the_loss_non_finite(monkeypatch):
    monkeypatch.setattr(stepping, "CALL_SECONDS", 1e6)
    monkeypatch.setattr(stepping, "choose", lambda seconds, steps: 4)
    guard = NonFiniteLossGuard()
    net = model()
    stepping.fit(net, dataset(poison_at=5), auto=True, epochs=3, callbacks=[guard], verbose=0)
    # epoch 1 runs a step a call: the poisoned batch is named alone
    assert guard.failure.startswith("non-finite loss (nan) at epoch 1, step 6;")
    guard, net = NonFiniteLossGuard(), model(4)
    net.fit(dataset(poison_at=5), epochs=1, callbacks=[guard], verbose=0)
    assert guard.failure.startswith("non-finite loss (nan) at epoch 1, steps 5-8;")


def test_ctrl_c_stops_after_the_current_call_and_the_handler_is_restored(monkeypatch):
    monkeypatch.setattr(stepping, "CALL_SECONDS", 1e6)
    monkeypatch.setattr(stepping, "choose", lambda seconds, steps: 3)
    import signal

    before = signal.getsignal(signal.SIGINT)
    interrupt = GracefulInterrupt()

    class PressCtrlC(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                signal.raise_signal(signal.SIGINT)

    counts = Counts()
    history = stepping.fit(model(), dataset(), auto=True, epochs=5,
                           callbacks=[PressCtrlC(), interrupt, counts], verbose=0)
    assert interrupt.interrupted
    assert counts.batches == list(range(STEPS)) + [2]  # epoch 2 stopped after its first call
    assert len(history.history["loss"]) == 2 and counts.ends == 1
    assert signal.getsignal(signal.SIGINT) is before


def test_auto_resolves_to_a_choice_on_one_replica_and_to_one_on_several():
    assert settings(["trainer.steps_per_execution=auto"], replicas=1).steps_per_execution is None
    assert settings(["trainer.steps_per_execution=auto"], replicas=2).steps_per_execution == 1
