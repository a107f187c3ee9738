"""Pieces every builder shares: activations, regularizers, conv blocks (heads: models.heads)."""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

from kexp.errors import KexpError

ACTIVATIONS = ("relu", "relu6", "leaky_relu", "elu", "gelu", "swish", "tanh", "sigmoid", "selu",
               "mish")


def check_choice(key: str, value, valid: Sequence[str]):
    """`value` if it is one of `valid`, else a one-line KexpError naming `model.<key>`."""
    if value not in valid:
        raise KexpError(f"model.{key}: '{value}' is not valid; expected one of "
                        f"{', '.join(map(str, valid))}")
    return value


def check_activation(name: str) -> str:
    return check_choice("activation", name, ACTIVATIONS)


INITIALIZERS = ("glorot_uniform", "glorot_normal", "he_normal", "he_uniform", "lecun_normal",
                "lecun_uniform", "random_normal", "random_uniform", "truncated_normal",
                "orthogonal", "zeros", "ones")


def check_initializer(name: str) -> str:
    return check_choice("kernel_initializer", name, INITIALIZERS)


def image_input(builder):
    """Marks a builder that reads images (height, width, channels): `models.backbone` checks
    the data's shape once for every such builder, before building anything."""
    builder.input_rank = 3
    return builder


def scaled(channels: int, width: float) -> int:
    """`channels` times the `width` multiplier, at least 1."""
    return max(1, round(channels * width))


def regularizer(l1: float, l2: float) -> keras.regularizers.Regularizer | None:
    """An L1/L2 weight penalty, or None when both are zero (no extra loss terms)."""
    if not l1 and not l2:
        return None
    return keras.regularizers.L1L2(l1=float(l1), l2=float(l2))


def conv_block(x, filters: int, *, kernel_size: int = 3, strides: int = 1, padding: str = "same",
               activation: str = "relu",
               batch_norm: bool = False, l1: float = 0.0, l2: float = 0.0,
               kernel_initializer: str = "he_normal", name: str | None = None):
    """conv -> (batch norm) -> activation; the conv has no bias when batch norm follows it."""
    x = layers.Conv2D(filters, kernel_size, strides=strides, padding=padding,
                      use_bias=not batch_norm,
                      kernel_initializer=check_initializer(kernel_initializer),
                      kernel_regularizer=regularizer(l1, l2),
                      name=f"{name}_conv" if name else None)(x)
    if batch_norm:
        x = layers.BatchNormalization(name=f"{name}_bn" if name else None)(x)
    return layers.Activation(check_activation(activation), name=f"{name}_act" if name else None)(x)


def dense_stack(x, units: Sequence[int], *, activation: str, dropout: float,
                batch_norm: bool, l1: float, l2: float, kernel_initializer: str):
    """Hidden dense layers, each dense -> (batch norm) -> activation -> (dropout)."""
    for i, n in enumerate(units):
        if int(n) <= 0:
            raise KexpError(f"model: dense layer sizes must be positive, got {list(units)}")
        x = layers.Dense(int(n), use_bias=not batch_norm,
                         kernel_initializer=check_initializer(kernel_initializer),
                         kernel_regularizer=regularizer(l1, l2), name=f"dense_{i}")(x)
        if batch_norm:
            x = layers.BatchNormalization(name=f"dense_{i}_bn")(x)
        x = layers.Activation(check_activation(activation), name=f"dense_{i}_act")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"dense_{i}_dropout")(x)
    return x


def pad_to(x, size: int, input_shape: Sequence[int]):
    """Zero-pad a small image up to `size` x `size` so a fixed-depth conv stack fits it."""
    h, w = int(input_shape[0]), int(input_shape[1])
    if h >= size and w >= size:
        return x
    ph, pw = max(size - h, 0), max(size - w, 0)
    return layers.ZeroPadding2D(((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)),
                                name="pad_to_fit")(x)
