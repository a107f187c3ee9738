"""Seeds, op determinism, the global dtype policy and a fresh Keras session: the only global
state a run sets, set here."""

from __future__ import annotations

import contextlib
import gc
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


def fresh_session() -> None:
    """Keras' global state reset, and the objects of the process's earlier runs freed.

    Keras' own `clear_session()` collects garbage over every object the process holds: after
    importing TensorFlow, Keras and MLflow that is ~490,000 objects and 0.2-0.9 s of the time
    to the first step here, each run. So each run collects once and then freezes what
    survived (`gc.freeze`: the imported modules, the stores and caches a first run opens,
    what the caller keeps), and every later collection, the automatic ones during training
    too, scans only what came after: a later run (`-m`, tuning trials, the benchmarks) still
    frees the one before it, in ~0.05 s instead of the 0.27-0.29 s that rescanning the
    ~220,000 objects a first run leaves behind took (docs/benchmarks.md). The price: an object
    alive at a run's start that its holder drops later, and that sits in a reference cycle,
    is never collected (a model a notebook keeps across runs and then deletes, say); the
    process's own runs drop theirs before the next one starts."""
    keras.backend.clear_session(free_memory=False)
    if gc.get_freeze_count():
        gc.collect()
    gc.freeze()


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
