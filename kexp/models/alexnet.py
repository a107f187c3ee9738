"""AlexNet (Krizhevsky, Sutskever & Hinton, 2012, "ImageNet Classification with Deep
Convolutional Neural Networks").

Two layouts of the same five convs (64-192-384-256-256 channels) and a dense head:

- `variant="imagenet"`: the single-tower network of torchvision / Krizhevsky's "One weird
  trick" (2014), layer for layer: 11x11 stride-4 conv (padding 2) -> 3x3/2 max pool ->
  5x5 conv -> 3x3/2 max pool -> three 3x3 convs -> 3x3/2 max pool -> flatten (6x6x256 = 9216
  at 224x224) -> dense 4096 -> 4096 -> classes. 61,100,840 parameters with 1000 classes, the
  same count as torchvision's `alexnet()`.
- `variant="cifar"`: for 28x28 and 32x32 images: 5x5 stride-1 first conv, only two 3x3/2 max
  pools (after conv1 and conv2; with "same" padding 32 -> 16 -> 8 and 28 -> 14 -> 7), the
  three 3x3 convs at 8x8, flatten (8x8x256 = 16384 at 32x32) and a smaller dense head
  (`dense_units`, 512-512 in conf/model/alexnet_cifar.yaml).

Differences from the paper: local response normalization is omitted (as in torchvision; it
adds nothing over `batch_norm`, which puts batch normalization after every conv instead) and
the net is one tower rather than two GPUs' halves. Dropout follows each hidden dense layer's
activation (the paper's "dropout in the first two fully-connected layers"); torchvision puts
the same two dropouts before those layers instead. No parameter differs.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

from kexp.errors import KexpError
from kexp.models.layers import (
    check_activation,
    check_initializer,
    conv_block,
    dense_stack,
    image_input,
    scaled,
)

VARIANTS = ("imagenet", "cifar")
CHANNELS = (64, 192, 384, 256, 256)
# (kernel size, stride, max pool after it) of each conv; imagenet convs are "valid" after
# explicit padding (2 for conv1) as in torchvision, cifar convs are "same"
LAYOUT = {
    "imagenet": ((11, 4, True), (5, 1, True), (3, 1, False), (3, 1, False), (3, 1, True)),
    "cifar": ((5, 1, True), (5, 1, True), (3, 1, False), (3, 1, False), (3, 1, False)),
}


def _imagenet_feature_size(size: int) -> int:
    """Height (or width) of the imagenet layout's last feature map for inputs of `size`."""
    size = (size + 2 * 2 - 11) // 4 + 1  # conv1: 11x11, stride 4, padding 2
    for _ in range(3):  # three 3x3/2 "valid" max pools; the other convs keep the size
        size = (size - 3) // 2 + 1
    return size


# smallest input side the imagenet layout can take without resizing (63 -> 1x1 features)
MIN_IMAGENET_SIZE = next(s for s in range(1, 256) if _imagenet_feature_size(s) >= 1)


@image_input
def alexnet(input_shape: Sequence[int], variant: str = "imagenet",
            dense_units: Sequence[int] = (4096, 4096), resize_to: int = 224,
            activation: str = "relu", dropout: float = 0.5, batch_norm: bool = False,
            l1: float = 0.0, l2: float = 0.0, kernel_initializer: str = "he_normal",
            width: float = 1.0) -> keras.Model:
    """Builds an AlexNet.

    Args:
        input_shape: (height, width, channels) of one image. The imagenet layout needs at
            least 63x63 (its stride-4 conv and three pools); smaller images are resized up to
            `resize_to` inside the model. The cifar layout takes any size (8x8 and up).
        variant: "imagenet" (the 224-px original, 11x11 stride-4 first conv, three max
            pools) or "cifar" (5x5 stride-1 first conv, two max pools).
        dense_units: hidden dense layers of the head (4096, 4096 in the original).
        resize_to: images whose height or width is smaller than this are resized (bilinear)
            to `resize_to` x `resize_to` by a `Resizing` layer inside the model; 0 never
            resizes (an input too small for the layout is then an error).
        activation: activation after every conv and hidden dense layer (ReLU in the paper).
        dropout: dropout rate after every hidden dense layer.
        batch_norm: batch normalization after every conv (in place of the paper's local
            response normalization, which is not used).
        l1: L1 weight penalty on every kernel.
        l2: L2 weight penalty on every kernel.
        kernel_initializer: initializer of every conv and hidden dense kernel.
        width: multiplier on the channels of every conv (not on `dense_units`).

    Returns:
        A `keras.Model` named "alexnet" or "alexnet_cifar", whose output is one
        feature vector per example (no head: the task adds its own, kexp.tasks).
    """
    if variant not in VARIANTS:
        raise KexpError(f"model.variant: '{variant}' is not an AlexNet variant; valid: "
                        f"{', '.join(VARIANTS)}")
    if isinstance(resize_to, bool) or not isinstance(resize_to, int) or resize_to < 0:
        raise KexpError(f"model.resize_to: {resize_to!r} is not valid; expected 0 (never "
                        f"resize) or an image size such as 224")
    check_activation(activation)
    check_initializer(kernel_initializer)

    inputs = keras.Input(shape=tuple(input_shape), name="inputs")
    x = inputs
    size = min(int(input_shape[0]), int(input_shape[1]))
    if resize_to and size < resize_to:
        x = layers.Resizing(resize_to, resize_to, name="resize")(x)
        size = resize_to
    if variant == "imagenet" and _imagenet_feature_size(size) < 1:
        raise KexpError(f"model=alexnet (variant imagenet) needs images of at least "
                        f"{MIN_IMAGENET_SIZE}x{MIN_IMAGENET_SIZE}, got {tuple(input_shape)}; "
                        f"set model.resize_to=224 or use model=alexnet_cifar")

    for i, ((kernel, stride, pool), channels) in enumerate(
            zip(LAYOUT[variant], CHANNELS, strict=True), start=1):
        padding = "same"
        if variant == "imagenet":
            # torchvision pads conv1 by 2 and the others by kernel // 2 ("same" at stride 1)
            padding = "valid" if i == 1 else "same"
            if i == 1:
                x = layers.ZeroPadding2D(2, name="conv1_pad")(x)
        x = conv_block(x, scaled(channels, width), kernel_size=kernel, strides=stride,
                       padding=padding, activation=activation, batch_norm=batch_norm, l1=l1,
                       l2=l2, kernel_initializer=kernel_initializer, name=f"conv{i}")
        if pool:
            # overlapping pooling (3x3, stride 2) as in the paper
            x = layers.MaxPooling2D(3, strides=2,
                                    padding="valid" if variant == "imagenet" else "same",
                                    name=f"pool{i}")(x)

    x = layers.Flatten(name="flatten")(x)
    x = dense_stack(x, dense_units, activation=activation, dropout=dropout, batch_norm=False,
                    l1=l1, l2=l2, kernel_initializer=kernel_initializer)
    outputs = x  # features: the task puts its head on them (kexp.tasks)
    return keras.Model(inputs, outputs, name="alexnet" if variant == "imagenet"
                       else "alexnet_cifar")
