"""The fully connected GAN (Goodfellow et al. 2014) that learns MNIST digits: a dense
generator and a dense discriminator with LeakyReLU and dropout."""

from __future__ import annotations

import math
from collections.abc import Sequence

import keras
from keras import layers

from kexp.models.generative import GanPair, generative, image_and_label, noise_and_label, score


@generative
def gan_mlp(input_shape: Sequence[int], latent_dim: int = 100,
            generator_units: Sequence[int] = (256, 512, 1024),
            discriminator_units: Sequence[int] = (1024, 512, 256), dropout: float = 0.3,
            leaky_slope: float = 0.2, batch_norm: bool = True, width: float = 1.0,
            label_classes: int = 0, embed_dim: int = 50) -> GanPair:
    """Builds the dense generator and discriminator.

    Args:
        input_shape: (height, width, channels) of the images to generate.
        latent_dim: length of the noise vector the generator reads.
        generator_units: hidden dense layers of the generator, from the noise up.
        discriminator_units: hidden dense layers of the discriminator, from the pixels down.
        dropout: dropout rate after every hidden layer of the discriminator.
        leaky_slope: negative slope of every LeakyReLU.
        batch_norm: batch normalization after every hidden layer of the generator.
        width: multiplier on every hidden layer's units.
        label_classes: > 0: a conditional GAN over this many classes (both networks read
            the label); 0: unconditional.
        embed_dim: size of the label embedding of a conditional GAN.

    Returns:
        A `GanPair`: the generator maps noise (and a label) to images in [-1, 1] (tanh), the
        discriminator maps images (and a label) to one float32 score.
    """
    shape = tuple(int(d) for d in input_shape)
    inputs, x = noise_and_label(latent_dim, label_classes, embed_dim)
    for i, units in enumerate(generator_units):
        x = layers.Dense(max(1, round(units * width)), name=f"g_dense{i + 1}")(x)
        if batch_norm:
            x = layers.BatchNormalization(name=f"g_bn{i + 1}")(x)
        x = layers.LeakyReLU(leaky_slope)(x)
    x = layers.Reshape(shape, name="g_image")(layers.Dense(math.prod(shape), name="g_pixels")(x))
    images = layers.Activation("tanh", dtype="float32", name="images")(x)  # float32 under mixed
    generator = keras.Model(inputs, images, name="generator")

    inputs, x = image_and_label(shape, label_classes, embed_dim, as_channel=False)
    for i, units in enumerate(discriminator_units):
        x = layers.Dense(max(1, round(units * width)), name=f"d_dense{i + 1}")(x)
        x = layers.LeakyReLU(leaky_slope)(x)
        if dropout:
            x = layers.Dropout(dropout)(x)
    discriminator = keras.Model(inputs, score(x), name="discriminator")
    return GanPair(generator, discriminator)
