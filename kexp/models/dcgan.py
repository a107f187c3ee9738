"""DCGAN (Radford et al. 2016): a generator of strided transposed convolutions with batch
normalization and ReLU ending in tanh, and a discriminator of strided convolutions with
LeakyReLU (no pooling, no dense hidden layers).

The layout follows the image size: the generator starts from a small square (7x7 for 28
pixels, 4x4 for 32 and 64, 4x4 for 8x8 digits) and doubles it `depth` times; the
discriminator halves it back. Any channel count works (1 for MNIST, 3 for CIFAR-10).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

from kexp.errors import KexpError
from kexp.models.generative import GanPair, generative, image_and_label, noise_and_label, score


def layout(height: int, width: int, depth: int | None = None) -> tuple[int, int, int]:
    """(start height, start width, depth): the square the generator starts from and how many
    times it doubles. Auto depth halves while both sides stay even and >= 4 (28 -> 7, 32 -> 4,
    64 -> 4, 8 -> 4)."""
    if depth is None:
        depth, h, w = 0, height, width
        while h % 2 == 0 and w % 2 == 0 and min(h, w) // 2 >= 4:
            depth, h, w = depth + 1, h // 2, w // 2
    scale = 2 ** depth
    if depth < 1 or height % scale or width % scale or min(height, width) // scale < 2:
        raise KexpError(f"model=dcgan: images of {height}x{width} pixels do not halve "
                        f"{depth if depth else 'even once'} time(s) to a start of at least 2x2; "
                        f"use data.image_size with sides divisible by 4 (e.g. 28, 32, 64), or "
                        f"set model.depth")
    return height // scale, width // scale, depth


@generative
def dcgan(input_shape: Sequence[int], latent_dim: int = 100, filters: int = 64,
          depth: int | None = None, kernel_size: int = 4, leaky_slope: float = 0.2,
          dropout: float = 0.0, label_classes: int = 0, embed_dim: int = 50) -> GanPair:
    """Builds the DCGAN generator and discriminator.

    Args:
        input_shape: (height, width, channels) of the images to generate.
        latent_dim: length of the noise vector the generator reads.
        filters: channels of the generator's last hidden stage and the discriminator's first;
            each stage nearer the noise doubles them (the paper's 64 for 64x64 images).
        depth: stride-2 stages on each side; null: from the image size (see `layout`).
        kernel_size: kernel of every (transposed) convolution (the paper's 4 or 5).
        leaky_slope: negative slope of the discriminator's LeakyReLUs (the paper's 0.2).
        dropout: dropout rate after every discriminator stage (0: none, as in the paper).
        label_classes: > 0: a conditional GAN over this many classes (both networks read
            the label); 0: unconditional.
        embed_dim: size of the generator's label embedding (the discriminator embeds the
            label as one extra image channel).

    Returns:
        A `GanPair`: the generator maps noise (and a label) to images in [-1, 1], the
        discriminator maps images (and a label) to one float32 score.
    """
    height, width, channels = (int(d) for d in input_shape)
    start_h, start_w, depth = layout(height, width, depth)
    widest = filters * 2 ** (depth - 1)

    inputs, x = noise_and_label(latent_dim, label_classes, embed_dim)
    x = layers.Dense(start_h * start_w * widest, use_bias=False, name="g_project")(x)
    x = layers.BatchNormalization(name="g_project_bn")(x)
    x = layers.ReLU()(x)
    x = layers.Reshape((start_h, start_w, widest))(x)
    for i in range(depth - 1):
        x = layers.Conv2DTranspose(widest // 2 ** (i + 1), kernel_size, strides=2,
                                   padding="same", use_bias=False, name=f"g_up{i + 1}")(x)
        x = layers.BatchNormalization(name=f"g_bn{i + 1}")(x)
        x = layers.ReLU()(x)
    x = layers.Conv2DTranspose(channels, kernel_size, strides=2, padding="same",
                               name=f"g_up{depth}")(x)
    images = layers.Activation("tanh", dtype="float32", name="images")(x)
    generator = keras.Model(inputs, images, name="generator")

    inputs, x = image_and_label((height, width, channels), label_classes, embed_dim,
                                as_channel=True)
    for i in range(depth):
        x = layers.Conv2D(filters * 2 ** i, kernel_size, strides=2, padding="same",
                          name=f"d_down{i + 1}")(x)
        x = layers.LeakyReLU(leaky_slope)(x)
        if dropout:
            x = layers.Dropout(dropout)(x)
    x = layers.Flatten()(x)
    discriminator = keras.Model(inputs, score(x), name="discriminator")
    return GanPair(generator, discriminator)
