"""CIFAR-style VGG (Simonyan & Zisserman, 2014, "Very Deep Convolutional Networks").

Five conv stages of 3x3 convs, each ending in 2x2 max pooling, then a small dense head
as in the common CIFAR adaptations (one 512 layer instead of two 4096 ones).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

from kexp.errors import KexpError
from kexp.models.layers import conv_block, dense_stack, image_input, pad_to

# convs per stage for each depth; the channels per stage are 64, 128, 256, 512, 512
STAGES = {11: (1, 1, 2, 2, 2), 13: (2, 2, 2, 2, 2), 16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}
CHANNELS = (64, 128, 256, 512, 512)
MIN_SIZE = 32  # five 2x2 poolings


@image_input
def vgg(input_shape: Sequence[int], depth: int = 11, batch_norm: bool = True,
        width: float = 1.0, dense_units: Sequence[int] = (512,), activation: str = "relu",
        dropout: float = 0.5, l1: float = 0.0, l2: float = 0.0,
        kernel_initializer: str = "he_normal") -> keras.Model:
    """Builds a VGG for small images.

    Args:
        input_shape: (height, width, channels) of one image; smaller than 32x32 is
            zero-padded to 32x32 inside the model.
        depth: 11, 13, 16 or 19 weight layers in the original (8/10/13/16 convs + 3 dense).
        batch_norm: batch normalization after every conv (VGG-BN).
        width: multiplier on the channels of every stage.
        dense_units: hidden dense layers of the head.
        activation: activation after every conv and dense layer.
        dropout: dropout rate after every hidden dense layer.
        l1: L1 weight penalty on every kernel.
        l2: L2 weight penalty on every kernel.
        kernel_initializer: initializer of every kernel.

    Returns:
        A `keras.Model` named "vgg<depth>", whose output is one
        feature vector per example (no head: the task adds its own, kexp.tasks).
    """
    if depth not in STAGES:
        raise KexpError(f"model.depth: {depth} is not a VGG depth; valid: "
                        f"{', '.join(map(str, STAGES))}")
    inputs = keras.Input(shape=tuple(input_shape), name="inputs")
    x = pad_to(inputs, MIN_SIZE, input_shape)
    for stage, (convs, channels) in enumerate(zip(STAGES[depth], CHANNELS, strict=True)):
        for i in range(convs):
            x = conv_block(x, max(1, round(channels * width)), activation=activation,
                           batch_norm=batch_norm, l1=l1, l2=l2,
                           kernel_initializer=kernel_initializer, name=f"stage{stage}_{i}")
        x = layers.MaxPooling2D(2, name=f"stage{stage}_pool")(x)
    x = layers.Flatten(name="flatten")(x)
    x = dense_stack(x, dense_units, activation=activation, dropout=dropout,
                    batch_norm=False, l1=l1, l2=l2, kernel_initializer=kernel_initializer)
    outputs = x  # features: the task puts its head on them (kexp.tasks)
    return keras.Model(inputs, outputs, name=f"vgg{depth}")
