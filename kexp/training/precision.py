"""Seeds, op determinism and the global dtype policy: the only global state a run sets, set here."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import keras


@contextlib.contextmanager
def precision_policy(name: str) -> Iterator[None]:
    """Use the Keras dtype policy `name` for models built inside, then restore the old one."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow (Keras' own helper covers all three)."""
    keras.utils.set_random_seed(seed)


def set_determinism(enabled: bool) -> None:
    """`trainer.deterministic`: TensorFlow's op determinism on or off.

    It is process-wide state, so every run sets it either way (one run's choice must not leak
    into the next run of the same process: a multirun, a search's trials). Deterministic ops
    can be slower, and Keras turns XLA off under them."""
    import tensorflow as tf
    from tensorflow.python.framework import config

    if enabled:
        tf.config.experimental.enable_op_determinism()
    else:
        config.disable_op_determinism()
