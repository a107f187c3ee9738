"""What `kexp.data.load` returns. Kept free of TensorFlow imports so it is cheap to import."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import tensorflow as tf


@dataclass(frozen=True)
class DataSpec:
    """Static facts about the data a model needs, and the split sizes actually used."""

    name: str
    input_shape: tuple[int, ...]  # one example: (H, W, C) images or (sequence_length,) token ids
    num_classes: int
    class_names: list[str]
    num_train: int
    num_val: int
    num_test: int
    vocab_size: int | None = None  # text only: token ids run 0..vocab_size-1 (0 pads, 1 is OOV)
    version: str | None = None  # the source's version where it has one (TFDS)
    fingerprint: str | None = None  # of the examples read: kexp.data.pipeline.fingerprint


@dataclass
class DataBundle:
    """Batched, prefetched (x, y int32) splits; only `train` is shuffled and augmented.

    x is float32 images, or int32 token ids for text."""

    train: tf.data.Dataset
    val: tf.data.Dataset
    test: tf.data.Dataset
    spec: DataSpec
    # text only: the token of each id, vocabulary[0] = "" (padding), [1] = "[UNK]" (OOV);
    # kexp.data.text.save_vocabulary writes it for data.vocabulary_file
    vocabulary: list[str] | None = None
    # the epoch the training order is drawn for (kexp.data.pipeline.epoch_batches); the
    # DataEpoch callback sets it at every epoch's start
    epoch: tf.Variable | None = None
