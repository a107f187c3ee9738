"""Training on several machines: MultiWorkerMirroredStrategy through Keras' own `model.fit`.

`model.fit` needs the two fixes of `kexp.training.keras_fixes` under this strategy; with them,
gradients, optimizer updates, callbacks and logging are Keras' own. kexp adds what a
multi-worker run needs around them: the cluster from config or TF_CONFIG, each worker's slice of
every global batch, a final barrier, and which worker is the chief.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from typing import Any

import keras
import tensorflow as tf
from omegaconf import DictConfig

from kexp.environment import debug_enabled
from kexp.errors import KexpError
from kexp.training import keras_fixes

log = logging.getLogger("kexp")

_COMMUNICATION = {"auto": tf.distribute.experimental.CommunicationImplementation.AUTO,
                  "ring": tf.distribute.experimental.CommunicationImplementation.RING,
                  "nccl": tf.distribute.experimental.CommunicationImplementation.NCCL}


def make_multi_worker(cfg: DictConfig) -> tf.distribute.MultiWorkerMirroredStrategy:
    """The strategy over the cluster `strategy.cluster` (or TF_CONFIG) names."""
    communication = cfg.get("communication", "auto")
    if communication not in _COMMUNICATION:
        raise KexpError(f"strategy.communication: '{communication}' is not valid; expected "
                        f"{', '.join(_COMMUNICATION)}")
    keras_fixes.apply()
    if not debug_enabled():  # TensorFlow logs every collective it launches at INFO
        logging.getLogger("tensorflow").setLevel(logging.WARNING)
    return tf.distribute.MultiWorkerMirroredStrategy(
        cluster_resolver=cluster_resolver(cfg),
        communication_options=tf.distribute.experimental.CommunicationOptions(
            implementation=_COMMUNICATION[communication]))


def cluster_resolver(cfg: DictConfig) -> tf.distribute.cluster_resolver.ClusterResolver:
    """`strategy.cluster` + `strategy.task_index` when given, else TF_CONFIG."""
    cluster, index = cfg.get("cluster"), cfg.get("task_index")
    if cluster:
        workers = [str(w) for w in cluster]
        if not isinstance(index, int) or not 0 <= index < len(workers):
            raise KexpError(f"strategy.task_index: {index!r} is not valid; expected this "
                            f"worker's index in strategy.cluster, 0 to {len(workers) - 1}")
        return tf.distribute.cluster_resolver.SimpleClusterResolver(
            tf.train.ClusterSpec({"worker": workers}), task_type="worker", task_id=index,
            rpc_layer="grpc")
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise KexpError("strategy=multi_worker: set strategy.cluster=[host:port,...] and "
                        "strategy.task_index=N, or the TF_CONFIG environment variable")
    try:
        task = json.loads(raw)["task"]
        task["type"], task["index"]  # noqa: B018 - both must be there
    except (ValueError, KeyError, TypeError):
        raise KexpError('TF_CONFIG: expected JSON like {"cluster": {"worker": ["host:port", '
                        '...]}, "task": {"type": "worker", "index": 0}}') from None
    return tf.distribute.cluster_resolver.TFConfigClusterResolver()


def distribute(dataset: tf.data.Dataset, strategy: tf.distribute.Strategy
               ) -> tf.distribute.DistributedDataset:
    """Every worker's own part of each global batch of `dataset`.

    Every worker runs the same seeded pipeline, so all see the same global batches; each keeps
    its replicas' slices. The training is then that of one process with the same global batch
    (TensorFlow's automatic sharding rewrites the pipeline, reshuffling it, and breaks that).
    """
    replicas = strategy.num_replicas_in_sync

    def per_worker(ctx: tf.distribute.InputContext) -> tf.data.Dataset:
        local = replicas // ctx.num_input_pipelines
        first = ctx.input_pipeline_id * local

        def slices(*batch: Any) -> tf.data.Dataset:
            n = tf.shape(tf.nest.flatten(batch)[0])[0]

            def piece(k: tf.Tensor) -> Any:
                lo, hi = n * (first + k) // replicas, n * (first + k + 1) // replicas
                return tf.nest.map_structure(lambda t: t[lo:hi], batch)

            return tf.data.Dataset.range(local).map(lambda k: piece(tf.cast(k, tf.int32)))

        ds = dataset.flat_map(slices)
        batches = int(dataset.cardinality())
        if local == 1 and batches >= 0:
            # Keras makes a dataset iterator per epoch differently for known and unknown
            # sizes; a reshuffling pipeline then orders each epoch as the one-process run does
            # only when both know the size
            ds = ds.apply(tf.data.experimental.assert_cardinality(batches))
        return ds.prefetch(tf.data.AUTOTUNE)

    return strategy.distribute_datasets_from_function(per_worker)


def finish_together(model: keras.Model) -> None:
    """End a multi-worker run on every worker at once (no-op for other strategies).

    Each worker logs its weights' fingerprint (they must all be equal), then waits for the
    others: a worker that exits while the chief still writes its files makes TensorFlow's
    coordination service fail the chief ("The tasks have crashed")."""
    strategy = model.distribute_strategy
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        log.info("final weights fingerprint %s (the same on every worker)",
                 weights_fingerprint(model))
        strategy.reduce("SUM", strategy.run(lambda: tf.constant(1.0)), axis=None)


def weights_fingerprint(model: keras.Model) -> str:
    """A short hash of all the model's weights: every worker of a run must end with the same."""
    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(weight.tobytes())
    return digest.hexdigest()[:16]


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes files and logs: always, except on a multi-worker run's
    non-chief workers (the chief is task "chief", or worker 0 when there is none)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None:
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type in (None, "chief"):
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and not has_chief
