"""Multi-layer perceptron over the flattened input."""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

from kexp.models.layers import dense_stack, scaled


def mlp(input_shape: Sequence[int], hidden_units: Sequence[int] = (256, 128),
        activation: str = "relu", dropout: float = 0.0, batch_norm: bool = False,
        width: float = 1.0, l1: float = 0.0, l2: float = 0.0,
        kernel_initializer: str = "glorot_uniform") -> keras.Model:
    """Builds an MLP backbone.

    Args:
        input_shape: shape of one example; it is flattened.
        hidden_units: width of each hidden layer, first to last (empty: logistic regression).
        activation: activation of the hidden layers.
        dropout: dropout rate after each hidden layer.
        batch_norm: batch normalization before each hidden activation.
        width: multiplier on every hidden layer's width.
        l1: L1 weight penalty on every kernel.
        l2: L2 weight penalty on every kernel.
        kernel_initializer: initializer of every kernel.

    Returns:
        A `keras.Model` named "mlp", whose output is one
        feature vector per example (no head: the task adds its own, kexp.tasks).
    """
    inputs = keras.Input(shape=tuple(input_shape), name="inputs")
    x = layers.Flatten(name="flatten")(inputs)
    x = dense_stack(x, [scaled(int(n), width) for n in hidden_units], activation=activation,
                    dropout=dropout,
                    batch_norm=batch_norm, l1=l1, l2=l2, kernel_initializer=kernel_initializer)
    outputs = x  # features: the task puts its head on them (kexp.tasks)
    return keras.Model(inputs, outputs, name="mlp")
