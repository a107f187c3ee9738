"""The small conv net (LeNet-style): (conv-act-[attention]-pool) x N -> dense -> classifier.

LeNet-5 (LeCun et al., 1998) is the preset `lenet`: two 5x5 conv stages of 6 and 16 channels with
average pooling and tanh, then dense 120 and 84. With `padding: valid` on 32x32x1 inputs it is the
1998 layout (61,706 parameters for 10 classes, C3 fully connected).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

from kexp.errors import KexpError
from kexp.models.attention import attention_block
from kexp.models.layers import conv_block, dense_stack, image_input, scaled

POOLING = {"max": layers.MaxPooling2D, "avg": layers.AveragePooling2D}
PADDING = ("same", "valid")


@image_input
def cnn(input_shape: Sequence[int], filters: Sequence[int] = (32, 64),
        kernel_size: int = 3, padding: str = "same", pooling: str = "max",
        dense_units: Sequence[int] = (128,), activation: str = "relu", dropout: float = 0.0,
        batch_norm: bool = False, attention: str = "none", width: float = 1.0,
        l1: float = 0.0, l2: float = 0.0, kernel_initializer: str = "he_normal") -> keras.Model:
    """Builds the small conv net.

    Args:
        input_shape: (height, width, channels) of one image; each stage halves height and
            width (and a `valid` conv trims kernel_size - 1 pixels first).
        filters: channels of each conv stage.
        kernel_size: conv kernel size.
        padding: "same" (keeps the size) or "valid" (no padding, as in LeNet-5).
        pooling: "max" or "avg" 2x2 pooling after every stage.
        dense_units: hidden dense layers before the classifier (empty: none).
        activation: activation after every conv and dense layer.
        dropout: dropout rate after every hidden dense layer.
        batch_norm: batch normalization after every conv.
        attention: "none", "se" or "cbam" attention after every conv stage.
        width: multiplier on the channels of every stage and the dense layers.
        l1: L1 weight penalty on every kernel.
        l2: L2 weight penalty on every kernel.
        kernel_initializer: initializer of every kernel.

    Returns:
        A `keras.Model` named "cnn", whose output is one
        feature vector per example (no head: the task adds its own, kexp.tasks).
    """
    if padding not in PADDING:
        raise KexpError(f"model.padding: '{padding}' is not valid; expected same or valid")
    if pooling not in POOLING:
        raise KexpError(f"model.pooling: '{pooling}' is not valid; expected max or avg")
    _check_fits(input_shape, len(filters), kernel_size, padding)
    inputs = keras.Input(shape=tuple(input_shape), name="inputs")
    x = inputs
    for i, f in enumerate(filters):
        x = conv_block(x, scaled(int(f), width), kernel_size=kernel_size, padding=padding,
                       activation=activation, batch_norm=batch_norm, l1=l1, l2=l2,
                       kernel_initializer=kernel_initializer, name=f"stage{i}")
        x = attention_block(x, attention, l1=l1, l2=l2, name=f"stage{i}")
        x = POOLING[pooling](2, name=f"stage{i}_pool")(x)
    x = layers.Flatten(name="flatten")(x)
    x = dense_stack(x, [scaled(int(n), width) for n in dense_units], activation=activation,
                    dropout=dropout, batch_norm=False, l1=l1, l2=l2,
                    kernel_initializer=kernel_initializer)
    outputs = x  # features: the task puts its head on them (kexp.tasks)
    return keras.Model(inputs, outputs, name="cnn")


def _check_fits(input_shape: Sequence[int], stages: int, kernel_size: int, padding: str) -> None:
    size = min(int(s) for s in input_shape[:2])
    for _ in range(stages):
        size = (size - (kernel_size - 1 if padding == "valid" else 0)) // 2
        if size < 1:
            break
    if size >= 1:
        return
    smallest = 1
    for _ in range(stages):
        smallest = smallest * 2 + (kernel_size - 1 if padding == "valid" else 0)
    raise KexpError(f"model=cnn with {stages} stages of {padding} {kernel_size}x{kernel_size} "
                    f"convs needs images of at least {smallest}x{smallest}, got "
                    f"{tuple(input_shape)}; use fewer model.filters")
