"""The small conv net (LeNet-style): (conv-act-pool) x N -> dense -> classifier."""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

from kexp.errors import KexpError
from kexp.models.layers import classifier, conv_block, dense_stack


def cnn(input_shape: Sequence[int], num_classes: int, filters: Sequence[int] = (32, 64),
        kernel_size: int = 3, dense_units: int = 128, activation: str = "relu",
        dropout: float = 0.0, batch_norm: bool = False, l1: float = 0.0, l2: float = 0.0,
        kernel_initializer: str = "he_normal") -> keras.Model:
    """Builds the small conv net.

    Args:
        input_shape: (height, width, channels) of one image; each stage halves height and
            width, so both must be at least 2 ** len(filters).
        num_classes: number of output classes.
        filters: channels of each conv stage.
        kernel_size: conv kernel size.
        dense_units: width of the hidden dense layer (0: none).
        activation: activation after every conv and the dense layer.
        dropout: dropout rate before the classifier.
        batch_norm: batch normalization after every conv.
        l1: L1 weight penalty on every kernel.
        l2: L2 weight penalty on every kernel.
        kernel_initializer: initializer of every kernel.

    Returns:
        A `keras.Model` named "cnn".
    """
    if len(input_shape) != 3:
        raise KexpError(f"model=cnn needs images (height, width, channels), got input shape "
                        f"{tuple(input_shape)}")
    smallest = 2 ** len(filters)
    if min(input_shape[:2]) < smallest:
        raise KexpError(f"model=cnn with {len(filters)} stages needs images of at least "
                        f"{smallest}x{smallest}, got {tuple(input_shape)}; use fewer "
                        f"model.filters")
    inputs = keras.Input(shape=tuple(input_shape), name="inputs")
    x = inputs
    for i, f in enumerate(filters):
        x = conv_block(x, int(f), kernel_size=kernel_size, activation=activation,
                       batch_norm=batch_norm, l1=l1, l2=l2,
                       kernel_initializer=kernel_initializer, name=f"stage{i}")
        x = layers.MaxPooling2D(2, name=f"stage{i}_pool")(x)
    x = layers.Flatten(name="flatten")(x)
    x = dense_stack(x, [dense_units] if dense_units else [], activation=activation,
                    dropout=dropout, batch_norm=False, l1=l1, l2=l2,
                    kernel_initializer=kernel_initializer)
    outputs = classifier(x, num_classes, l1=l1, l2=l2)
    return keras.Model(inputs, outputs, name="cnn")
