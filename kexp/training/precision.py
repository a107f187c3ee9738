"""Seeds and the global dtype policy: the only global state a run sets, set here."""

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
