"""What a data source hands the pipeline: unbatched splits and what they hold."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf


@dataclass
class RawSplits:
    """What a source hands over: unbatched (x, y) datasets plus metadata.

    x: images are rank-3 (H, W, C) of any numeric dtype with a fully known shape; text sources
    hand over scalar tf.string texts (built by kexp.data.text); table sources rank-1 float32
    feature vectors (F,).
    y: int class ids when `target_names` is None; otherwise float32 vectors of
    len(target_names) real targets (regression; `class_names` is then ignored, best []).
    `auto_scale` is what `data.scale: auto` means for this source (None: 255 for uint8, else 1).
    """

    train: tf.data.Dataset
    val: tf.data.Dataset
    test: tf.data.Dataset
    class_names: list[str]
    auto_scale: float | None = None
    version: str | None = None  # the source's own version, e.g. a TFDS builder's "3.0.1"
    target_names: list[str] | None = None  # real targets: one name per target column
    feature_names: list[str] | None = None  # tables: one name per feature (after encoding)


def from_arrays(
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    class_names: list[str],
    auto_scale: float | None = None,
    target_names: list[str] | None = None,
    feature_names: list[str] | None = None,
) -> RawSplits:
    """RawSplits from in-memory (x, y) array pairs.

    y: int class ids (kept as int32), or with `target_names` real targets, (N,) or (N, k) with
    k = len(target_names) (kept as float32 (N, k)).
    """

    def to_ds(pair: tuple[np.ndarray, np.ndarray]) -> tf.data.Dataset:
        x, y = pair
        if target_names is None:
            y = y.astype(np.int32)
        else:
            y = np.asarray(y, dtype=np.float32)
            if y.ndim == 1:
                y = y[:, np.newaxis]
            if y.ndim != 2 or y.shape[1] != len(target_names):
                raise ValueError(f"real targets of shape {y.shape} do not match "
                                 f"target_names {target_names}")
        return tf.data.Dataset.from_tensor_slices((x, y))

    return RawSplits(
        to_ds(train), to_ds(val), to_ds(test), list(class_names), auto_scale,
        target_names=None if target_names is None else list(target_names),
        feature_names=None if feature_names is None else list(feature_names),
    )


@dataclass
class RawCorpus:
    """What a language-model source hands over: the text of each split, contiguous parts of
    one corpus (kexp.data.corpus tokenizes them)."""

    train: str
    val: str
    test: str
    version: str | None = None


@dataclass
class RawPairs:
    """What a sequence-to-sequence source hands over: (source, target) text pairs per split,
    held-out splits made by distinct source sentence (kexp.data.pairs tokenizes them)."""

    train: list[tuple[str, str]]
    val: list[tuple[str, str]]
    test: list[tuple[str, str]]
    version: str | None = None


@dataclass
class PointSet:
    """One split of a pointer task: `points` (n, k, d) float32 and, per example, the input
    positions the answer points at, in order (`orders`; the END is not in them)."""

    points: np.ndarray
    orders: list[list[int]]

    def __len__(self) -> int:
        return len(self.orders)

    def __add__(self, other: PointSet) -> PointSet:  # data.train_on_val joins two splits
        return PointSet(np.concatenate([self.points, other.points]), self.orders + other.orders)


@dataclass
class RawPoints:
    """What a pointer-network source hands over (kexp.data.sources.point_sets): generated
    point sets and the answer of each, per split (kexp.data.points batches them)."""

    train: PointSet
    val: PointSet
    test: PointSet
    version: str | None = None
