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

from collections.abc import Callable

import numpy as np
import tensorflow as tf
from omegaconf import DictConfig

from kexp.data import keys
from kexp.data.augment import augment_dataset, augment_on, augment_settings
from kexp.data.bundle import DataBundle, DataSpec
from kexp.data.raw import RawCorpus, RawPairs, RawPoints, RawSplits
from kexp.data.stages import Augment, count_splits, epoch_batches, fingerprint
from kexp.errors import KexpError


def build(raw: RawSplits | RawCorpus | RawPairs | RawPoints, cfg: DictConfig,
          global_batch_size: int, seed: int) -> DataBundle:
    """Turn a source's raw splits into the batched DataBundle described by `cfg`."""
    if isinstance(raw, RawCorpus):  # a language model's corpus: windows of token ids
        from kexp.data import corpus

        return corpus.build(raw, cfg, global_batch_size, seed)
    if isinstance(raw, RawPairs):  # sequence pairs: source and target ids
        from kexp.data import pairs

        return pairs.build(raw, cfg, global_batch_size, seed)
    if isinstance(raw, RawPoints):  # point sets: a pointer network's inputs and answers
        from kexp.data import points

        return points.build(raw, cfg, global_batch_size, seed)
    x_spec = raw.train.element_spec[0]
    if x_spec.dtype == tf.string:  # text: tokenized by its own half of the pipeline
        from kexp.data import text

        return text.build(raw, cfg, global_batch_size, seed)
    input_shape = tuple(x_spec.shape)
    if len(input_shape) == 1:  # a table: its source encoded and standardized the features
        if None in input_shape or input_shape[0] == 0:
            raise KexpError(f"data: table rows must have a fixed number (> 0) of features, "
                            f"got {input_shape}")

        def features(x: tf.Tensor) -> tf.Tensor:
            return tf.cast(x, tf.float32)

        return _assemble(raw, cfg, features, input_shape, global_batch_size, seed)
    if len(input_shape) != 3 or None in input_shape:
        raise KexpError(f"data: images must have a fixed (H, W, C) shape, got {input_shape}")
    scale = _scale(cfg, raw, x_spec.dtype)
    mean, std = _mean_std(cfg, input_shape[-1])
    crop_padding, horizontal_flip = augment_settings(cfg)
    in_pipeline = augment_on(cfg) == "pipeline"  # else the model augments (with_augmentation)

    def pixels(x: tf.Tensor) -> tf.Tensor:
        x = tf.cast(x, tf.float32) / scale
        return x if mean is None else (x - mean) / std

    def augment(batches: tf.data.Dataset, epoch_seed: tf.Tensor) -> tf.data.Dataset:
        if not in_pipeline:
            return batches
        return augment_dataset(batches, crop_padding, horizontal_flip, epoch_seed)

    return _assemble(raw, cfg, pixels, input_shape, global_batch_size, seed, augment)


def _assemble(
    raw: RawSplits, cfg: DictConfig, preprocess: Callable[[tf.Tensor], tf.Tensor],
    input_shape: tuple[int, ...], global_batch_size: int, seed: int | None,
    augment: Augment | None = None,
) -> DataBundle:
    """normalize (`preprocess` on x, kept in the bundle as `DataBundle.preprocess`; the
    target cast) -> subset -> cache -> count -> fingerprint -> epoch batches -> prefetch."""
    regression = raw.target_names is not None
    y_dtype = tf.float32 if regression else tf.int32

    def normalize(x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return preprocess(x), tf.cast(y, y_dtype)

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
    ys: list[np.ndarray] = []  # the training targets, read by the fingerprint's pass
    read = (fingerprint(train, val, test, ys if regression else None)
            if keys.boolean(cfg, "fingerprint", True) else None)
    target_mean, target_std = target_stats(train, len(raw.target_names), ys) if regression else (
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
        preprocess=preprocess,
        raw_test=raw.test if subset is None else raw.test.take(subset),
    )


def target_stats(train: tf.data.Dataset, k: int, ys: list[np.ndarray] | None = None
                 ) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-column mean and (population) std of a split's real targets, a std of 0 as 1.0;
    from `ys`, the split's target batches, when a pass over it has already read them."""
    ys = ys or [y for _, y in train.batch(4096).as_numpy_iterator()]
    y = np.concatenate(ys).astype(np.float64).reshape(-1, k)
    mean, std = y.mean(axis=0), y.std(axis=0)
    std = np.where(std <= 1e-12 * np.maximum(1.0, np.abs(mean)), 1.0, std)  # a constant column
    return tuple(float(m) for m in mean), tuple(float(s) for s in std)


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
