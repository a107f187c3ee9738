"""DenseNet-BC (Huang et al., 2017, "Densely Connected Convolutional Networks").

Every layer of a dense block reads the concatenation of all earlier feature maps of the block
and adds `growth_rate` (k) new channels: BN -> act -> 1x1 conv (4k) -> BN -> act -> 3x3 conv
(k) (the "B" bottleneck). Transitions between blocks, BN -> act -> 1x1 conv to
floor(compression x channels) -> 2x2 average pool, shrink the maps (the "C", compression 0.5).
After the last block: BN -> act -> global average pooling -> classifier. Convs have no bias.

- Small images (CIFAR, sec. 3 of the paper): depth L = 6n + 4, a 3x3 stem conv with 2k
  channels and three dense blocks of n = (L - 4) / 6 layers; DenseNet-BC-100 (k = 12) has
  769,162 trainable parameters with 10 classes (Table 2: 0.8 M).
- ImageNet (Table 1): DenseNet-121/169/201/264, k = 32, a 7x7/2 stem conv with 2k channels ->
  BN -> act -> 3x3/2 max pool and four dense blocks (table `IMAGENET_BLOCKS`); the same
  layers and parameter count as `keras.applications.DenseNet121/169/201`.

`dropout` follows every conv after the stem, inside dense layers and transitions, as in the
paper (0.2 there when training without data augmentation).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

from kexp.errors import KexpError
from kexp.models.layers import (
    check_activation,
    check_initializer,
    image_input,
    pad_to,
    regularizer,
    scaled,
)

# dense layers per block of the ImageNet DenseNets (Table 1 of the paper)
IMAGENET_BLOCKS: dict[int, tuple[int, ...]] = {
    121: (6, 12, 24, 16), 169: (6, 12, 32, 32), 201: (6, 12, 48, 32), 264: (6, 12, 64, 48),
}
CIFAR_BLOCKS = 3  # small-image DenseNets: three blocks of (depth - 4) / 6 layers
BOTTLENECK = 4  # the 1x1 conv of a dense layer has 4 x growth_rate channels
IMAGENET_SIZE = 32  # the ImageNet layouts downsample 32x; smaller images are zero-padded to it
MIN_CIFAR_SIZE = 4  # two 2x2 average pools


def blocks_for(depth: int) -> tuple[str, tuple[int, ...]]:
    """("imagenet" | "cifar", dense layers per block) for a depth, or a KexpError."""
    if depth in IMAGENET_BLOCKS:
        return "imagenet", IMAGENET_BLOCKS[depth]
    if depth >= 10 and (depth - 4) % 6 == 0:
        return "cifar", ((depth - 4) // 6,) * CIFAR_BLOCKS
    raise KexpError(f"model.depth: {depth} is not a DenseNet-BC depth; valid: "
                    f"{', '.join(map(str, IMAGENET_BLOCKS))} (ImageNet) or 6n+4 >= 10 for "
                    f"small images (40, 100, 190, 250, ...)")


@image_input
def densenet(input_shape: Sequence[int], depth: int = 100,
             growth_rate: int = 12, compression: float = 0.5, activation: str = "relu",
             dropout: float = 0.0, batch_norm: bool = True, l1: float = 0.0, l2: float = 0.0,
             kernel_initializer: str = "he_normal", width: float = 1.0) -> keras.Model:
    """Builds a DenseNet-BC for small images or an ImageNet DenseNet.

    Args:
        input_shape: (height, width, channels) of one image. Small-image depths take any
            image of at least 4x4 as it is; ImageNet depths downsample 32x and zero-pad
            images smaller than 32x32 up to 32x32 inside the model.
        depth: 121, 169, 201 or 264 (ImageNet layouts), or 6n + 4 (three blocks of n dense
            layers for small images, e.g. 100).
        growth_rate: channels each dense layer adds (k); the stem has 2k, bottlenecks 4k.
        compression: fraction of the channels a transition keeps, in (0, 1] (1: DenseNet-B).
        activation: activation after every batch norm.
        dropout: dropout rate after every conv but the stem's.
        batch_norm: batch normalization before every activation; False drops it and gives
            the convs biases.
        l1: L1 weight penalty on every kernel.
        l2: L2 weight penalty on every kernel (SGD weight decay `wd` is `l2 = wd / 2`).
        kernel_initializer: initializer of every conv kernel.
        width: multiplier on the growth rate (and so on every conv).

    Returns:
        A `keras.Model` named "densenet<depth>", whose output is one
        feature vector per example (no head: the task adds its own, kexp.tasks).
    """
    kind, blocks = blocks_for(depth)
    name = f"densenet{depth}"
    if not 0 < compression <= 1:
        raise KexpError(f"model.compression: {compression} is not valid; expected a number "
                        f"in (0, 1]")
    if growth_rate < 1:
        raise KexpError(f"model.growth_rate: {growth_rate} is not valid; expected a positive "
                        f"integer")
    if kind == "cifar" and min(input_shape[:2]) < MIN_CIFAR_SIZE:
        raise KexpError(f"model={name} needs images of at least {MIN_CIFAR_SIZE}x"
                        f"{MIN_CIFAR_SIZE}, got {tuple(input_shape)}")
    activation = check_activation(activation)
    kernel_initializer = check_initializer(kernel_initializer)
    k = scaled(growth_rate, width)

    def conv(x, filters: int, kernel: int, name: str, stride: int = 1):
        padding = "same"
        if stride > 1:  # symmetric padding, as keras.applications
            x = layers.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x)
            padding = "valid"
        return layers.Conv2D(filters, kernel, strides=stride, padding=padding,
                             use_bias=not batch_norm, kernel_initializer=kernel_initializer,
                             kernel_regularizer=regularizer(l1, l2), name=name)(x)

    def norm_act(x, name: str):
        if batch_norm:
            x = layers.BatchNormalization(name=f"{name}_bn")(x)
        return layers.Activation(activation, name=f"{name}_act")(x)

    def drop(x, name: str):
        return layers.Dropout(dropout, name=f"{name}_dropout")(x) if dropout else x

    inputs = keras.Input(shape=tuple(input_shape), name="inputs")
    if kind == "imagenet":
        x = pad_to(inputs, IMAGENET_SIZE, input_shape)
        x = conv(x, 2 * k, 7, "stem_conv", stride=2)
        x = norm_act(x, "stem")
        x = layers.ZeroPadding2D(1, name="stem_pool_pad")(x)
        x = layers.MaxPooling2D(3, strides=2, name="stem_pool")(x)
    else:
        x = conv(inputs, 2 * k, 3, "stem_conv")

    for b, n_layers in enumerate(blocks):
        for i in range(n_layers):
            layer = f"block{b}_layer{i}"
            y = drop(conv(norm_act(x, f"{layer}_pre"), BOTTLENECK * k, 1, f"{layer}_conv1"),
                     f"{layer}_conv1")
            y = drop(conv(norm_act(y, f"{layer}_mid"), k, 3, f"{layer}_conv2"),
                     f"{layer}_conv2")
            x = layers.Concatenate(name=f"{layer}_concat")([x, y])
        if b < len(blocks) - 1:
            transition = f"transition{b}"
            x = conv(norm_act(x, transition), max(1, int(x.shape[-1] * compression)), 1,
                     f"{transition}_conv")
            x = drop(x, f"{transition}_conv")
            x = layers.AveragePooling2D(2, strides=2, name=f"{transition}_pool")(x)

    x = norm_act(x, "post")
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = x  # features: the task puts its head on them (kexp.tasks)
    return keras.Model(inputs, outputs, name=name)
