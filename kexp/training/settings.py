"""What a run's config comes to on this machine: batch sizes, learning rate, XLA, who logs.

Resolved once, after the strategy is made, used to compile the model, and logged to MLflow as
`resolved.*` params (and printed), so a run on 8 GPUs says what it really did.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import tensorflow as tf
from omegaconf import DictConfig

from kexp.errors import KexpError
from kexp.training.multi_worker import is_chief
from kexp.training.stepping import AUTO

log = logging.getLogger("kexp")


@dataclass(frozen=True)
class RunSettings:
    replicas: int
    batch_size_per_replica: int
    global_batch_size: int
    learning_rate: float  # optimizer.lr, times the replicas when schedule.scale_lr is on
    jit_compile: bool
    # None: `auto`, chosen after the first epoch (kexp/training/stepping.py)
    steps_per_execution: int | None
    chief: bool  # writes files and logs to MLflow (False only on a multi-worker run's others)

    @property
    def auto_steps(self) -> bool:
        """True when kexp picks the steps per call itself after the first epoch."""
        return self.steps_per_execution is None


def resolve(cfg: DictConfig, strategy: tf.distribute.Strategy) -> RunSettings:
    """The settings `cfg` gives under `strategy`."""
    replicas = strategy.num_replicas_in_sync
    per_replica, global_batch = batch_sizes(cfg.trainer, replicas)
    lr = float(cfg.optimizer.lr)
    if cfg.schedule.get("scale_lr", False):  # the linear scaling rule (Goyal et al., 2017)
        lr *= replicas
    steps = cfg.trainer.steps_per_execution
    if steps == AUTO:
        # MirroredStrategy crashes in fit with steps_per_execution > 1 (keras-team/keras#19246)
        steps = 1 if replicas > 1 else None
    elif replicas > 1 and steps > 1:
        log.warning("trainer.steps_per_execution=%d forced to 1 under %d replicas", steps,
                    replicas)
        steps = 1
    return RunSettings(replicas=replicas, batch_size_per_replica=per_replica,
                       global_batch_size=global_batch, learning_rate=lr,
                       jit_compile=jit_compile(cfg.trainer.jit_compile, strategy),
                       steps_per_execution=steps, chief=is_chief(strategy))


def batch_sizes(trainer: DictConfig, replicas: int) -> tuple[int, int]:
    """(per replica, global): trainer.batch_size is per replica unless batch_per_replica=false."""
    size = int(trainer.batch_size)
    if trainer.get("batch_per_replica", True):
        return size, size * replicas
    if size % replicas:
        raise KexpError(f"trainer.batch_size: {size} is the global batch "
                        f"(trainer.batch_per_replica=false) and must divide evenly over "
                        f"{replicas} replicas")
    return size // replicas, size


def jit_compile(setting: bool | str, strategy: tf.distribute.Strategy) -> bool:
    """trainer.jit_compile as a bool. `auto`: XLA when the run has one replica and it is a GPU.

    Keras' own `auto` turns XLA off under any tf.distribute strategy, so on one GPU (kexp's
    OneDeviceStrategy) it would silently lose XLA. On a CPU it stays off (`python -m kexp.bench
    --cases mlp --kexp trainer.jit_compile=true` on 2 cores: the MLP at 0.39x the speed), and
    with 2+ replicas too (Keras 3 compiles the whole distributed step, untested here): set
    trainer.jit_compile=true to force it.
    """
    if isinstance(setting, bool):
        return setting
    if strategy.num_replicas_in_sync != 1:
        return False
    try:
        devices = strategy.extended.worker_devices
    except RuntimeError:  # TensorFlow's default strategy places ops on a GPU when there is one
        return bool(tf.config.list_logical_devices("GPU"))
    return all("GPU" in device.upper() for device in devices)


def describe(strategy: tf.distribute.Strategy, settings: RunSettings) -> str:
    name = type(strategy).__name__
    name = "default (no distribution)" if name.startswith("_Default") else name
    return (f"strategy {name} with {settings.replicas} replica(s), global batch "
            f"{settings.global_batch_size} ({settings.batch_size_per_replica} per replica), "
            f"lr {settings.learning_rate:g}, XLA {'on' if settings.jit_compile else 'off'}")
