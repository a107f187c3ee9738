"""tf.distribute strategies from the `strategy` group."""

from __future__ import annotations

import logging

import tensorflow as tf
from omegaconf import DictConfig

from kexp.errors import KexpError

log = logging.getLogger(__name__)

_CROSS_DEVICE_OPS = {
    "auto": lambda: None,
    "nccl": lambda: tf.distribute.NcclAllReduce(),
    "hierarchical_copy": lambda: tf.distribute.HierarchicalCopyAllReduce(),
    "reduce_to_one_device": lambda: tf.distribute.ReductionToOneDevice(),
}


def make_strategy(cfg: DictConfig) -> tf.distribute.Strategy:
    """The strategy `cfg.name` asks for, checked against the devices this machine has."""
    if cfg.name == "mirrored" and cfg.get("virtual_cpus"):
        _split_cpu(int(cfg.virtual_cpus))
    gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    if cfg.name == "auto":
        if len(gpus) >= 2:
            return tf.distribute.MirroredStrategy()
        if len(gpus) == 1:
            return tf.distribute.OneDeviceStrategy(gpus[0])
        return tf.distribute.get_strategy()
    if cfg.name == "cpu":
        return tf.distribute.OneDeviceStrategy("/cpu:0")
    if cfg.name == "one_device":
        _check_device(cfg.device)
        return tf.distribute.OneDeviceStrategy(cfg.device)
    if cfg.name == "mirrored":
        return _mirrored(cfg, gpus)
    raise KexpError(f"strategy.name: '{cfg.name}' is not valid; expected auto, cpu, "
                    f"one_device or mirrored")


def describe(strategy: tf.distribute.Strategy, per_replica_batch: int) -> str:
    replicas = strategy.num_replicas_in_sync
    name = type(strategy).__name__
    name = "default (no distribution)" if name.startswith("_Default") else name
    return (f"strategy {name} with {replicas} replica(s), "
            f"global batch {per_replica_batch * replicas} ({per_replica_batch} per replica)")


def _mirrored(cfg: DictConfig, gpus: list[str]) -> tf.distribute.Strategy:
    op = cfg.get("cross_device_ops", "auto")
    if op not in _CROSS_DEVICE_OPS:
        raise KexpError(f"strategy.cross_device_ops: '{op}' is not valid; expected "
                        f"{', '.join(_CROSS_DEVICE_OPS)}")
    devices = list(cfg.devices) if cfg.get("devices") else None
    if devices is None:
        cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
        devices = gpus or cpus
    for device in devices:
        _check_device(device)
    return tf.distribute.MirroredStrategy(devices=devices,
                                          cross_device_ops=_CROSS_DEVICE_OPS[op]())


def _split_cpu(n: int) -> None:
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)])
    except RuntimeError:
        # TensorFlow was already initialized in this process; keep what it has
        have = len(tf.config.list_logical_devices("CPU"))
        if have != n:
            raise KexpError(f"strategy.virtual_cpus={n}: TensorFlow is already initialized "
                            f"with {have} CPU device(s) in this process") from None


def _check_device(device: str) -> None:
    names = [d.name for d in tf.config.list_logical_devices()]
    wanted = tf.DeviceSpec.from_string(device)
    for name in names:
        spec = tf.DeviceSpec.from_string(name)
        if (spec.device_type or "").upper() == (wanted.device_type or "").upper() and \
                spec.device_index == wanted.device_index:
            return
    raise KexpError(f"strategy device '{device}' not found; this machine has: "
                    f"{', '.join(names)}")
