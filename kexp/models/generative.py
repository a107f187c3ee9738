"""What the generative families (gan_mlp, dcgan) share: the pair they return, the marker
`task=gan` looks for, and the label conditioning both sides of a conditional GAN use.

A generative builder takes `input_shape` (of the images to generate) and `label_classes`
(0: unconditional) and returns a `GanPair`: a generator from noise (and a label) to images in
[-1, 1], and a discriminator from images (and a label) to one float32 score per image.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import keras
from keras import layers


class GanPair(NamedTuple):
    """A generator and its discriminator, both functional `keras.Model`s."""

    generator: keras.Model
    discriminator: keras.Model


def generative(builder: Callable[..., GanPair]) -> Callable[..., GanPair]:
    """Marks a builder of a `GanPair`: `task=gan` accepts only these, and the other tasks
    refuse them (they have no single output to put a head on)."""
    builder.generative = True
    builder.input_rank = 3  # images (height, width, channels)
    return builder


def is_generative(builder: Any) -> bool:
    return bool(getattr(builder, "generative", False))


def unit_normal() -> keras.initializers.Initializer:
    """Label embeddings start at the noise's scale: Keras' default (uniform +-0.05) is so faint
    beside N(0, 1) noise that a conditional generator learned to ignore its label here. A new
    initializer each time: one made at import would draw its seed before the run seeds."""
    return keras.initializers.RandomNormal(stddev=1.0)


def noise_and_label(latent_dim: int, label_classes: int, embed_dim: int):
    """The generator's inputs and what its first layer reads: the noise, concatenated with a
    learned embedding of the label when conditional."""
    noise = keras.Input(shape=(latent_dim,), name="noise")
    if not label_classes:
        return noise, noise
    label = keras.Input(shape=(), dtype="int32", name="label")
    embedded = layers.Embedding(label_classes, embed_dim, embeddings_initializer=unit_normal(),
                                name="label_embedding")(label)
    return [noise, label], layers.Concatenate(name="noise_and_label")([noise, embedded])


def image_and_label(input_shape: tuple[int, ...], label_classes: int, embed_dim: int,
                    as_channel: bool):
    """The discriminator's inputs and what its first layer reads: the image, with the label
    embedded beside it when conditional: as one more channel (`as_channel`, for conv nets) or
    concatenated to the flattened pixels (for dense nets)."""
    image = keras.Input(shape=input_shape, name="image")
    x = image if as_channel else layers.Flatten(name="pixels")(image)
    if not label_classes:
        return image, x
    label = keras.Input(shape=(), dtype="int32", name="label")
    height, width = input_shape[0], input_shape[1]
    size = height * width if as_channel else embed_dim
    embedded = layers.Embedding(label_classes, size, embeddings_initializer=unit_normal(),
                                name="label_embedding")(label)
    if as_channel:
        embedded = layers.Reshape((height, width, 1), name="label_map")(embedded)
        x = layers.Concatenate(axis=-1, name="image_and_label")([x, embedded])
    else:
        x = layers.Concatenate(name="pixels_and_label")([x, embedded])
    return [image, label], x


def score(x) -> Any:
    """The discriminator's output: one unbounded float32 score per image (a logit for bce)."""
    return layers.Dense(1, dtype="float32", name="score")(x)
