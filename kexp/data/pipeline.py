"""The one input pipeline every source goes through.

normalize (AUTOTUNE) -> subset -> cache -> shuffle [train] -> batch -> augment [train] -> prefetch

Images are scaled (data.scale, data.mean/std) and augmented; table rows (rank-1 feature vectors,
already encoded and standardized by their source) are only cast to float32; text takes its own
half (kexp.data.text). The training order and augmentation of epoch e are a function of
(seed, e) alone (see `epoch_batches`), so a run resumed at epoch k trains on what the
uninterrupted run would have.

(augment only with data.augment_on=pipeline; with `model` it runs inside the model instead, see
kexp.data.augment.with_augmentation)
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
from omegaconf import DictConfig

from kexp.data import keys
from kexp.data.augment import augment_dataset, augment_on, augment_settings
from kexp.data.bundle import DataBundle, DataSpec
from kexp.errors import KexpError

Augment = Callable[[tf.data.Dataset, tf.Tensor], tf.data.Dataset]


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


def build(raw: RawSplits, cfg: DictConfig, global_batch_size: int, seed: int) -> DataBundle:
    """Turn a source's raw splits into the batched DataBundle described by `cfg`."""
    x_spec = raw.train.element_spec[0]
    if x_spec.dtype == tf.string:  # text: tokenized by its own half of the pipeline
        from kexp.data import text

        return text.build(raw, cfg, global_batch_size, seed)
    y_dtype = tf.int32 if raw.target_names is None else tf.float32
    input_shape = tuple(x_spec.shape)
    if len(input_shape) == 1:  # a table: its source encoded and standardized the features
        if None in input_shape or input_shape[0] == 0:
            raise KexpError(f"data: table rows must have a fixed number (> 0) of features, "
                            f"got {input_shape}")

        def cast(x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            return tf.cast(x, tf.float32), tf.cast(y, y_dtype)

        return _assemble(raw, cfg, cast, input_shape, global_batch_size, seed)
    if len(input_shape) != 3 or None in input_shape:
        raise KexpError(f"data: images must have a fixed (H, W, C) shape, got {input_shape}")
    scale = _scale(cfg, raw, x_spec.dtype)
    mean, std = _mean_std(cfg, input_shape[-1])
    crop_padding, horizontal_flip = augment_settings(cfg)
    in_pipeline = augment_on(cfg) == "pipeline"  # else the model augments (with_augmentation)

    def normalize(x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        x = tf.cast(x, tf.float32) / scale
        if mean is not None:
            x = (x - mean) / std
        return x, tf.cast(y, y_dtype)

    def augment(batches: tf.data.Dataset, epoch_seed: tf.Tensor) -> tf.data.Dataset:
        if not in_pipeline:
            return batches
        return augment_dataset(batches, crop_padding, horizontal_flip, epoch_seed)

    return _assemble(raw, cfg, normalize, input_shape, global_batch_size, seed, augment)


def _assemble(
    raw: RawSplits, cfg: DictConfig,
    normalize: Callable[[tf.Tensor, tf.Tensor], tuple[tf.Tensor, tf.Tensor]],
    input_shape: tuple[int, ...], global_batch_size: int, seed: int | None,
    augment: Augment | None = None,
) -> DataBundle:
    """normalize -> subset -> cache -> count -> fingerprint -> epoch batches -> prefetch."""
    subset = keys.positive_int(cfg, "subset", None, allow_none=True)
    cache = keys.boolean(cfg, "cache", True)
    shuffle_buffer = keys.positive_int(cfg, "shuffle_buffer", 10000)

    def prepare(ds: tf.data.Dataset) -> tf.data.Dataset:
        ds = ds.map(normalize, num_parallel_calls=tf.data.AUTOTUNE)
        if subset is not None:
            ds = ds.take(subset)
        return ds.cache() if cache else ds

    train, val, test = prepare(raw.train), prepare(raw.val), prepare(raw.test)
    counts = count_splits(train, val, test)
    read = fingerprint(train, val, test) if keys.boolean(cfg, "fingerprint", True) else None
    regression = raw.target_names is not None
    target_mean, target_std = target_stats(train, len(raw.target_names)) if regression else (
        None, None)

    train, epoch = epoch_batches(train, counts["train"], shuffle_buffer, global_batch_size,
                                 seed, augment)
    spec = DataSpec(
        name=str(keys.get(cfg, "name", None) or keys.get(cfg, "source", "data")),
        input_shape=input_shape,
        num_classes=0 if regression else len(raw.class_names),
        class_names=[] if regression else list(raw.class_names),
        num_train=counts["train"],
        num_val=counts["val"],
        num_test=counts["test"],
        version=raw.version,
        fingerprint=read,
        target_names=list(raw.target_names) if regression else None,
        target_mean=target_mean,
        target_std=target_std,
        feature_names=None if raw.feature_names is None else list(raw.feature_names),
    )
    return DataBundle(
        train=train.prefetch(tf.data.AUTOTUNE),
        val=val.batch(global_batch_size).prefetch(tf.data.AUTOTUNE),
        test=test.batch(global_batch_size).prefetch(tf.data.AUTOTUNE),
        spec=spec,
        epoch=epoch,
    )


def target_stats(train: tf.data.Dataset, k: int
                 ) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-column mean and (population) std of a split's real targets, a std of 0 as 1.0."""
    ys = [y for y in train.map(lambda x, y: y).batch(4096).as_numpy_iterator()]
    y = np.concatenate(ys).astype(np.float64).reshape(-1, k)
    mean, std = y.mean(axis=0), y.std(axis=0)
    std = np.where(std <= 1e-12 * np.maximum(1.0, np.abs(mean)), 1.0, std)  # a constant column
    return tuple(float(m) for m in mean), tuple(float(s) for s in std)


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
        epoch_seed = base * 1_000_003 + epoch.read_value()  # distinct for every (seed, epoch)
        batches = examples.shuffle(shuffle_buffer, seed=epoch_seed,
                                   reshuffle_each_iteration=False).batch(batch_size)
        return augment(batches, epoch_seed) if augment else batches

    batches = tf.data.Dataset.range(1).flat_map(one_epoch)
    # flat_map hides the size; Keras needs it for its steps per epoch
    return batches.apply(tf.data.experimental.assert_cardinality(
        math.ceil(count / batch_size))), epoch


def _scale(cfg: DictConfig, raw: RawSplits, dtype: tf.DType) -> float:
    value = keys.get(cfg, "scale", "auto")
    if value == "auto":
        if raw.auto_scale is not None:
            return float(raw.auto_scale)
        return 255.0 if dtype == tf.uint8 else 1.0
    if not keys.is_number(value) or value <= 0:
        raise KexpError(f"data.scale: {value!r} must be a positive number or 'auto'")
    return float(value)


def _mean_std(cfg: DictConfig, channels: int) -> tuple[tf.Tensor | None, tf.Tensor | None]:
    mean, std = keys.get(cfg, "mean", None), keys.get(cfg, "std", None)
    if mean is None and std is None:
        return None, None
    if mean is None or std is None:
        raise KexpError("data.mean and data.std must be set together (or both null)")
    values = {}
    for key, value in (("mean", mean), ("std", std)):
        if keys.is_number(value):
            value = [value] * channels
        ok = isinstance(value, (list, tuple)) and all(keys.is_number(v) for v in value)
        if not ok or len(value) != channels:
            raise KexpError(
                f"data.{key}: {value!r} must be a list of {channels} numbers, one per channel"
            )
        values[key] = [float(v) for v in value]
    if any(v <= 0 for v in values["std"]):
        raise KexpError(f"data.std: {std!r} entries must all be > 0")
    return tf.constant(values["mean"]), tf.constant(values["std"])


def count_splits(train: tf.data.Dataset, val: tf.data.Dataset, test: tf.data.Dataset
                 ) -> dict[str, int]:
    """Examples per split, none of them empty; iterating cached splits here fills the caches."""
    counts = {"train": count_examples(train), "val": count_examples(val),
              "test": count_examples(test)}
    for name, count in counts.items():
        if count == 0:
            raise KexpError(f"data: the {name} split is empty (check data.val_fraction / the data)")
    return counts


def fingerprint(train: tf.data.Dataset, val: tf.data.Dataset, test: tf.data.Dataset) -> str:
    """SHA-256 (first 16 hex digits) of every example and label of the three splits as the
    model reads them (after normalizing and data.subset, before shuffling): two runs with the
    same fingerprint trained and were tested on the same numbers. Iterating a cached split
    here fills its cache, so the first epoch reads it from memory; still it costs (60,000
    CIFAR-sized images from an npz on 2 cores: ~4 s), so `+data.fingerprint=false` skips it."""
    import hashlib

    digest = hashlib.sha256()
    for ds in (train, val, test):
        for x, y in ds.batch(4096).as_numpy_iterator():
            digest.update(np.ascontiguousarray(x).tobytes())
            digest.update(np.ascontiguousarray(y).tobytes())
        digest.update(b"|")  # where a split ends
    return digest.hexdigest()[:16]


def count_examples(ds: tf.data.Dataset) -> int:
    """Examples in a finite dataset; iterating a cached one here also fills its cache."""
    n = int(ds.cardinality())
    if n >= 0:
        return n
    return int(ds.reduce(np.int64(0), lambda count, _: count + 1))
