"""Random augmentation of whole batches, in the input pipeline or on the model's device.

`data.augment_on: pipeline` (the default): `augment_dataset` augments the training batches with
pure TF ops (no per-example Python). Randomness comes from stateless ops fed by a
`tf.data.Dataset.random` stream seeded per epoch, so a run is reproducible for a given seed
(resumed or not) while every epoch still draws fresh crops and flips.

`data.augment_on: model`: the pipeline leaves the batches alone and `with_augmentation` puts the
same augmentation in front of the model as Keras preprocessing layers, so it runs batched on the
accelerator with the model. They are active in training only (identity at inference) and hold
no weights, so the saved model reloads with plain Keras and the run card does not change.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import tensorflow as tf
from omegaconf import DictConfig

from kexp.config import check
from kexp.data import keys
from kexp.errors import KexpError


def augment_on(data_cfg: DictConfig) -> str:
    """`data.augment_on`: pipeline (the default when the key is absent) or model."""
    return check("data.augment_on", keys.get(data_cfg, "augment_on", "pipeline"),
                 wording="must be")


def augment_settings(data_cfg: DictConfig) -> tuple[int, bool]:
    """`data.augment.crop_padding` and `data.augment.horizontal_flip` (off when absent)."""
    return (keys.non_negative_int(data_cfg, "augment.crop_padding", 0),
            keys.boolean(data_cfg, "augment.horizontal_flip", False))


def random_crop(images: tf.Tensor, padding: int, seed: tf.Tensor) -> tf.Tensor:
    """Zero-pad a [B, H, W, C] batch by `padding` and crop each image back to H x W at random.

    The pipeline normalizes before augmenting, so with data.mean/std set the padding is the mean
    colour rather than black; that is the usual Keras CIFAR recipe and trains just as well.
    """
    height, width = images.shape[1], images.shape[2]
    padded = tf.pad(images, [[0, 0], [padding, padding], [padding, padding], [0, 0]])
    batch = tf.shape(images)[0]
    offsets = tf.random.stateless_uniform(
        [2, batch], seed, minval=0, maxval=2 * padding + 1, dtype=tf.int32
    )
    rows = offsets[0][:, None] + tf.range(height)[None, :]  # [B, H]
    cols = offsets[1][:, None] + tf.range(width)[None, :]  # [B, W]
    # Two batched gathers pick each image's own window; static H and W survive for Keras.
    cropped = tf.gather(padded, rows, axis=1, batch_dims=1)
    return tf.gather(cropped, cols, axis=2, batch_dims=1)


def random_flip(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Flip each image of a [B, H, W, C] batch left-right with probability 1/2."""
    flip = tf.random.stateless_uniform([tf.shape(images)[0]], seed) < 0.5
    return tf.where(flip[:, None, None, None], tf.reverse(images, axis=[2]), images)


def augment_batch(
    images: tf.Tensor, seed: tf.Tensor, crop_padding: int, horizontal_flip: bool
) -> tf.Tensor:
    """Apply the configured augmentations to one batch; `seed` is a shape-[2] int tensor."""
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, num=2))
    if crop_padding > 0:
        images = random_crop(images, crop_padding, crop_seed)
    if horizontal_flip:
        images = random_flip(images, flip_seed)
    return images


def augment_dataset(
    ds: tf.data.Dataset, crop_padding: int, horizontal_flip: bool, seed: int | tf.Tensor
) -> tf.data.Dataset:
    """Augment the images of a batched (x, y) dataset; unchanged when nothing is enabled.

    `seed` starts the stream of per-batch seeds: the pipeline passes one per epoch."""
    if crop_padding <= 0 and not horizontal_flip:
        return ds
    seeds = tf.data.Dataset.random(seed=seed).batch(2)

    def apply(batch, batch_seed):
        x, y = batch
        return augment_batch(x, batch_seed, crop_padding, horizontal_flip), y

    return tf.data.Dataset.zip((ds, seeds)).map(apply, num_parallel_calls=tf.data.AUTOTUNE)


def augmentation_layers(data_cfg: DictConfig, seed: int | None,
                        image_shape: Sequence[int]) -> list[keras.layers.Layer]:
    """Keras preprocessing layers doing what `augment_batch` does, for (H, W, C) images.

    The crop is `RandomTranslation` by a whole number of pixels in [-crop_padding, crop_padding]
    with zero fill, drawn per image: exactly a window of the image zero-padded by crop_padding,
    as `random_crop` takes. (`ZeroPadding2D` + `RandomCrop` is not used: in Keras 3.15 RandomCrop
    returns its input unchanged at inference, so the padded image would reach the model,
    keras-team/keras#21868, and it crops a whole batch at one offset.) With nearest sampling and
    a shift uniform in +-(crop_padding + 1/2) pixels, every offset is equally likely. Both layers
    compute in float32 whatever the dtype policy (the model casts their output to its own).
    """
    crop_padding, horizontal_flip = augment_settings(data_cfg)
    height, width = int(image_shape[0]), int(image_shape[1])
    base = None if seed is None else int(seed) % 2**31
    layers: list[keras.layers.Layer] = []
    if crop_padding > 0:
        if crop_padding >= min(height, width):
            raise KexpError(f"data.augment.crop_padding: {crop_padding} must be smaller than the "
                            f"images ({height}x{width}) with data.augment_on=model")
        layers.append(keras.layers.RandomTranslation(
            (crop_padding + 0.5) / height, (crop_padding + 0.5) / width, fill_mode="constant",
            fill_value=0.0, interpolation="nearest", seed=base, dtype="float32",
            name="augment_crop"))
    if horizontal_flip:
        layers.append(keras.layers.RandomFlip(
            "horizontal", seed=None if base is None else (base + 1) % 2**31, dtype="float32",
            name="augment_flip"))
    return layers


def with_augmentation(model: keras.Model, data_cfg: DictConfig, seed: int | None
                      ) -> keras.Model:
    """`model` behind the data's augmentation layers when `data.augment_on=model`.

    Unchanged with `augment_on: pipeline`, for text models and when no augmentation is enabled.
    The wrapper is a functional model named like `model` (nesting it whole), with the same
    weights, the same FLOPs and the dtype policy it was built with (mixed_float16 keeps Keras'
    loss scaling). Build it inside the same precision and strategy scope as `model`.
    With a crop, Keras compiles the wrapper without XLA: RandomTranslation declares
    `supports_jit=False` (TF has no XLA kernel for ImageProjectiveTransformV3), so
    `jit_compile=True` becomes False with Keras' warning. The flip alone keeps XLA.
    """
    if augment_on(data_cfg) != "model" or not _reads_images(model):
        return model
    image_shape = tuple(model.inputs[0].shape[1:])
    layers = augmentation_layers(data_cfg, seed, image_shape)
    if not layers:
        return model
    inputs = keras.Input(shape=image_shape, dtype=model.inputs[0].dtype)
    x = inputs
    for layer in layers:
        x = layer(x)
    return keras.Model(inputs, model(x), name=model.name, dtype=model.dtype_policy)


def _reads_images(model: Any) -> bool:
    """One float input of rank 4 (batch, H, W, C): what the augmentation layers take."""
    inputs = getattr(model, "inputs", None) or []
    return (len(inputs) == 1 and len(inputs[0].shape) == 4
            and "float" in str(inputs[0].dtype))
