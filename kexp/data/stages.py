"""The pipeline stages every kind of data shares (images, tables, text): counting and
fingerprinting the prepared splits, and the epoch-keyed shuffled training batches."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from kexp.errors import KexpError

# batched training data -> the same augmented, for an epoch's seed
Augment = Callable[[tf.data.Dataset, tf.Tensor], tf.data.Dataset]


def epoch_batches(
    examples: tf.data.Dataset, count: int, shuffle_buffer: int, batch_size: int,
    seed: int | None, augment: Augment | None = None,
) -> tuple[tf.data.Dataset, tf.Variable]:
    """Shuffled (and augmented) training batches whose order depends on the epoch, not on history.

    tf.data's `reshuffle_each_iteration` draws each order from how many iterators the dataset
    has made, and Keras makes two per epoch (one at an epoch's end that it never reads), so a
    run restarted at epoch k would replay the orders of epochs 0, 1, ... instead. Here the
    returned variable, which the DataEpoch callback sets as each epoch begins, seeds the
    shuffle and the augmentation of the iterator made for that epoch. seed None: a random seed.
    """
    base = random.randrange(2**31) if seed is None else int(seed) % 2**31
    epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="data_epoch")

    def one_epoch(_: tf.Tensor) -> tf.data.Dataset:
        # This runs while flat_map traces it, in a graph of its own. TensorFlow's get_seed
        # compares (graph seed, op seed) with (0, 0) in Python, which fails on a tensor op
        # seed when the global seed is 0 (`seed=0` runs); with no graph seed here the order
        # depends on data seed and epoch only, whatever the global seed.
        tf.compat.v1.get_default_graph().seed = None
        epoch_seed = base * 1_000_003 + epoch.read_value()  # distinct for every (seed, epoch)
        batches = examples.shuffle(shuffle_buffer, seed=epoch_seed,
                                   reshuffle_each_iteration=False).batch(batch_size)
        return augment(batches, epoch_seed) if augment else batches

    batches = tf.data.Dataset.range(1).flat_map(one_epoch)
    # flat_map hides the size; Keras needs it for its steps per epoch
    return batches.apply(tf.data.experimental.assert_cardinality(
        math.ceil(count / batch_size))), epoch


def count_splits(train: tf.data.Dataset, val: tf.data.Dataset, test: tf.data.Dataset
                 ) -> dict[str, int]:
    """Examples per split, none of them empty; iterating cached splits here fills the caches."""
    counts = {"train": count_examples(train), "val": count_examples(val),
              "test": count_examples(test)}
    for name, count in counts.items():
        if count == 0:
            raise KexpError(f"data: the {name} split is empty (check data.val_fraction / the data)")
    return counts


def fingerprint(train: tf.data.Dataset, val: tf.data.Dataset, test: tf.data.Dataset,
                train_targets: list[np.ndarray] | None = None) -> str:
    """SHA-256 (first 16 hex digits) of every example and label of the three splits as the
    model reads them (after normalizing and data.subset, before shuffling): two runs with the
    same fingerprint trained and were tested on the same numbers. Iterating a cached split
    here fills its cache, so the first epoch reads it from memory; still it costs (60,000
    CIFAR-sized images from an npz on 2 cores: ~4 s), so `+data.fingerprint=false` skips it.
    `train_targets`, when given, receives the training split's label batches (what a
    regression's target statistics need, read in the same pass)."""
    import hashlib

    digest = hashlib.sha256()
    for ds in (train, val, test):
        for x, y in ds.batch(4096).as_numpy_iterator():
            if ds is train and train_targets is not None:
                train_targets.append(y)
            # the arrays' own buffers (C order, as tobytes() would copy them): no copy
            digest.update(np.ascontiguousarray(x).data)
            digest.update(np.ascontiguousarray(y).data)
        digest.update(b"|")  # where a split ends
    return digest.hexdigest()[:16]


def count_examples(ds: tf.data.Dataset) -> int:
    """Examples in a finite dataset; iterating a cached one here also fills its cache."""
    n = int(ds.cardinality())
    if n >= 0:
        return n
    return int(ds.reduce(np.int64(0), lambda count, _: count + 1))
