"""Two fixes to Keras 3.15's TensorFlow trainer for training under tf.distribute strategies.

1. `TensorFlowTrainer._maybe_symbolic_build` runs before the first epoch of `fit` under any
   strategy. It draws the first batch of the training data only to learn its shapes, which
   (a) starts an extra pass over the dataset, so a pipeline that reshuffles every pass trains
   its first epoch on the second shuffle, not the one the same run without a strategy sees; and
   (b) under MultiWorkerMirroredStrategy averages that PerReplica batch across workers with a
   reduce that cannot take it and fails (keras-team/keras#20585, #20329).
   Fix: build from the dataset's `element_spec` (one replica's shapes and dtypes), which is all
   `_symbolic_build` reads of the batch; no data is drawn.
2. `reduce_per_replica(..., reduction="mean")`, which averages a step's metric results across
   replicas, calls `strategy.reduce("MEAN", value, axis=0)` under multi-worker strategies; the
   results are scalars, so it fails: "Invalid reduction dimension 0 for input with 0
   dimensions". Fix: `axis=None`, the mean over replicas the single-machine branch computes.

`apply()` replaces exactly those two functions and delegates to the originals in every other
case (no strategy; a reduction other than mean; a single machine). It is idempotent and runs
when kexp makes a strategy.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf
from keras.src.backend.tensorflow import trainer as tf_trainer

from kexp.errors import KexpError


def apply() -> None:
    """Install both fixes into Keras' TensorFlow trainer (once per process)."""
    if getattr(tf_trainer, "_kexp_fixed", False):
        return
    if not keras.__version__.startswith("3."):
        raise KexpError(f"kexp needs Keras 3, found {keras.__version__}")
    original_reduce = tf_trainer.reduce_per_replica
    original_build = tf_trainer.TensorFlowTrainer._maybe_symbolic_build

    def reduce_per_replica(values: Any, strategy: tf.distribute.Strategy, reduction: str):
        if reduction in ("auto", "mean") and tf_trainer._collective_all_reduce_multi_worker(
                strategy):
            return tf.nest.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None),
                                         values)
        return original_reduce(values, strategy, reduction)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        dataset = getattr(iterator, "_distributed_dataset", None)
        if self._distribute_strategy is None or data_batch is not None or dataset is None:
            return original_build(self, iterator=iterator, data_batch=data_batch)
        specs = tf.nest.map_structure(_one_replica, dataset.element_spec)
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=specs)

    tf_trainer.reduce_per_replica = reduce_per_replica
    tf_trainer.TensorFlowTrainer._maybe_symbolic_build = _maybe_symbolic_build
    tf_trainer._kexp_fixed = True


def _one_replica(spec: Any) -> Any:
    """A replica's TensorSpec from a (PerReplica) element spec: it has .shape and .dtype."""
    per_replica = getattr(spec, "_value_specs", None)
    return per_replica[0] if per_replica else spec
