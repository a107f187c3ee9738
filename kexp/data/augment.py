"""Random augmentation of whole batches with pure TF ops (no per-example Python).

Randomness comes from stateless ops fed by a seeded `tf.data.Dataset.random` stream, so a run is
reproducible for a given seed while every epoch still draws fresh crops and flips.
"""

from __future__ import annotations

import tensorflow as tf


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
    ds: tf.data.Dataset, crop_padding: int, horizontal_flip: bool, seed: int
) -> tf.data.Dataset:
    """Augment the images of a batched (x, y) dataset; unchanged when nothing is enabled."""
    if crop_padding <= 0 and not horizontal_flip:
        return ds
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)

    def apply(batch, batch_seed):
        x, y = batch
        return augment_batch(x, batch_seed, crop_padding, horizontal_flip), y

    return tf.data.Dataset.zip((ds, seeds)).map(apply, num_parallel_calls=tf.data.AUTOTUNE)
