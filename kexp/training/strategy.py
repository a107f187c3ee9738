"""tf.distribute strategies from the `strategy` group."""

from __future__ import annotations

import logging

import tensorflow as tf
from omegaconf import DictConfig

from kexp.errors import KexpError
from kexp.training import keras_fixes

log = logging.getLogger(__name__)

_CROSS_DEVICE_OPS = {
    "auto": lambda: None,
    "nccl": lambda: tf.distribute.NcclAllReduce(),
    "hierarchical_copy": lambda: tf.distribute.HierarchicalCopyAllReduce(),
    "reduce_to_one_device": lambda: tf.distribute.ReductionToOneDevice(),
}


def make_strategy(cfg: DictConfig) -> tf.distribute.Strategy:
    """The strategy `cfg.name` asks for, checked against the devices this machine has."""
    keras_fixes.apply()
    if cfg.name == "multi_worker":  # first: it must come before TensorFlow sees any device
        from kexp.training.multi_worker import make_multi_worker

        return make_multi_worker(cfg)
    if cfg.name == "mirrored" and cfg.get("virtual_cpus"):
        _split_cpu(int(cfg.virtual_cpus))
    gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    if cfg.name == "auto":
        choice = auto_choice(gpus)
        if choice == "mirrored":
            return tf.distribute.MirroredStrategy(gpus)
        if choice == "one_device":
            return tf.distribute.OneDeviceStrategy(gpus[0])
        return tf.distribute.get_strategy()
    if cfg.name == "cpu":
        return tf.distribute.OneDeviceStrategy("/cpu:0")
    if cfg.name == "one_device":
        _check_device(cfg.device)
        return tf.distribute.OneDeviceStrategy(cfg.device)
    if cfg.name == "mirrored":
        return _mirrored(cfg, gpus)
    if cfg.name == "tpu":
        return _tpu(cfg)
    raise KexpError(f"strategy.name: '{cfg.name}' is not valid; expected {', '.join(NAMES)}")


NAMES = ("auto", "cpu", "one_device", "mirrored", "multi_worker", "tpu")


def auto_choice(gpus: list[str]) -> str:
    """What `strategy=auto` picks for these visible GPUs: mirrored, one_device or default."""
    return "mirrored" if len(gpus) >= 2 else "one_device" if gpus else "default"


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


def _tpu(cfg: DictConfig) -> tf.distribute.Strategy:
    """TPUStrategy over the TPU `strategy.tpu` names ('' finds the local or Colab/GCE one)."""
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=cfg.get("tpu") or "")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as err:
        raise KexpError(f"strategy=tpu: no TPU reachable ({str(err).splitlines()[0]}); "
                        f"set strategy.tpu to its name or grpc:// address") from None
    return tf.distribute.TPUStrategy(resolver)


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
