"""Schedules, optimizers, strategies and the callbacks every run relies on."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
from omegaconf import OmegaConf

from kexp.errors import KexpError
from kexp.training.callbacks import NonFiniteLossGuard
from kexp.training.optimizers import build_optimizer
from kexp.training.schedules import build_schedule
from kexp.training.strategy import make_strategy
from tests.conftest import ROOT, compose_train


def schedule_cfg(name: str, **overrides):
    return OmegaConf.merge(OmegaConf.load(ROOT / "conf" / "schedule" / f"{name}.yaml"), overrides)


def lr_at(schedule, step: int) -> float:
    return float(schedule(step)) if callable(schedule) else float(schedule)


def test_constant_schedule_is_the_optimizer_lr():
    assert build_schedule(schedule_cfg("constant"), 0.01, 10, 5) == 0.01


def test_cosine_decays_to_min_ratio_after_warmup():
    s = build_schedule(schedule_cfg("cosine", warmup_epochs=1, min_lr_ratio=0.1), 0.1, 10, 5)
    assert lr_at(s, 0) == pytest.approx(0.0, abs=1e-9)
    assert lr_at(s, 5) == pytest.approx(0.05, rel=1e-4)   # halfway through the warm-up
    assert lr_at(s, 10) == pytest.approx(0.1, rel=1e-4)   # peak
    assert lr_at(s, 50) == pytest.approx(0.01, rel=1e-3)  # end: lr * min_lr_ratio


def test_step_schedule_drops_at_milestones():
    s = build_schedule(schedule_cfg("step", milestones=[2, 4], gamma=0.1), 1.0, 10, 6)
    assert [round(lr_at(s, t), 6) for t in (0, 19, 21, 39, 41)] == [1.0, 1.0, 0.1, 0.1, 0.01]


def test_warmup_then_constant():
    s = build_schedule(schedule_cfg("warmup", warmup_epochs=2, start_ratio=0.0), 0.2, 10, 10)
    assert lr_at(s, 10) == pytest.approx(0.1, rel=1e-4)
    assert lr_at(s, 20) == pytest.approx(0.2, rel=1e-4)
    assert lr_at(s, 99) == pytest.approx(0.2, rel=1e-4)


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd", "rmsprop"])
def test_every_optimizer_option_builds(name):
    cfg = compose_train([f"optimizer={name}"]).optimizer
    opt = build_optimizer(cfg, cfg.lr)
    assert type(opt).__name__.lower() == name
    assert float(opt.learning_rate) == pytest.approx(cfg.lr)


def test_unknown_optimizer_setting_is_named():
    cfg = OmegaConf.create({**OmegaConf.to_container(compose_train(["optimizer=sgd"]).optimizer),
                            "momentun": 0.9})
    with pytest.raises(KexpError, match="optimizer=sgd"):
        build_optimizer(cfg, 0.1)


def test_cpu_and_auto_strategies_on_a_machine_without_gpus():
    assert make_strategy(OmegaConf.create({"name": "cpu"})).num_replicas_in_sync == 1
    assert make_strategy(OmegaConf.create({"name": "auto"})).num_replicas_in_sync == 1


def test_missing_device_is_named():
    with pytest.raises(KexpError, match="/gpu:7"):
        make_strategy(OmegaConf.create({"name": "one_device", "device": "/gpu:7"}))


def test_non_finite_loss_stops_and_says_where():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(1e12), loss="mse")
    x = np.full((64, 2), 1e6, dtype="float32")
    guard = NonFiniteLossGuard()
    history = model.fit(x, x[:, :1], batch_size=8, epochs=3, callbacks=[guard], verbose=0)
    assert guard.failure is not None and "epoch 1" in guard.failure
    assert len(history.history["loss"]) == 1  # stopped in the first epoch
    assert not math.isfinite(history.history["loss"][0]) or "step" in guard.failure


def test_throughput_times_training_not_validation(monkeypatch):
    from kexp.training import throughput as module

    class Clock:  # a clock the test moves: wall time on a shared machine is noise
        now = 0.0

        def perf_counter(self):
            return self.now

    clock = Clock()
    monkeypatch.setattr(module, "time", clock)

    class Steps(keras.callbacks.Callback):  # each training step takes 1 s, validation 100 s
        def on_train_batch_end(self, batch, logs=None):
            clock.now += 1.0

        def on_test_begin(self, logs=None):
            clock.now += 100.0

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    x, y = np.ones((256, 4), "float32"), np.zeros(256, "int32")
    throughput = module.Throughput(examples_per_epoch=256)
    model.fit(x, y, batch_size=32, epochs=3, validation_data=(x[:32], y[:32]), verbose=0,
              callbacks=[throughput, Steps()])
    assert throughput.seconds == [8.0, 8.0, 8.0]  # 8 steps an epoch; validation not counted
    assert throughput.per_second == 256 / 8.0
    assert throughput.first_step_seconds == 1.0  # from the callback's creation to step 2


def test_the_guard_watches_every_loss_a_step_logs():
    """A model with losses of its own (a GAN's d_loss and g_loss) is guarded like any other."""
    guard = NonFiniteLossGuard()
    guard.set_model(keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)]))
    guard.on_epoch_begin(2)
    guard.on_train_batch_end(0, {"d_loss": 0.5, "g_loss": 1.0})
    assert guard.failure is None
    guard.on_train_batch_end(6, {"d_loss": 0.5, "g_loss": float("inf")})
    assert guard.failure.startswith("non-finite g_loss (inf) at epoch 3, step 7")
    assert guard.model.stop_training
