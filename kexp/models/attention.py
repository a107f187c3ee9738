"""Channel and spatial attention for conv nets, switched on by `model.attention`.

- "se": squeeze-and-excitation (Hu et al., 2018): global average pool -> bottleneck MLP ->
  sigmoid gate per channel.
- "cbam": convolutional block attention module (Woo et al., 2018): a channel gate from
  average- and max-pooled descriptors through one shared MLP, then a spatial gate from a 7x7
  conv over the channel-wise mean and max maps.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from kexp.errors import KexpError
from kexp.models.layers import check_choice, regularizer

ATTENTION = ("none", "se", "cbam")


def check_attention(kind: str) -> str:
    return check_choice("attention", kind, ATTENTION)


def attention_block(x, kind: str, *, reduction: int = 16, l1: float = 0.0, l2: float = 0.0,
                    name: str):
    """Re-weight the feature map `x` (N, H, W, C) with `kind` attention; "none" returns x."""
    kind = check_attention(kind)
    if kind == "se":
        return se_block(x, reduction=reduction, l1=l1, l2=l2, name=f"{name}_se")
    if kind == "cbam":
        return cbam_block(x, reduction=reduction, l1=l1, l2=l2, name=f"{name}_cbam")
    return x


@keras.saving.register_keras_serializable(package="kexp")
class ChannelPool(layers.Layer):
    """(N, H, W, C) -> (N, H, W, 2): the mean and the max over channels at every pixel."""

    def call(self, x):
        return ops.concatenate([ops.mean(x, axis=-1, keepdims=True),
                                ops.max(x, axis=-1, keepdims=True)], axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 2)


def _bottleneck_units(channels: int, reduction: int) -> int:
    if reduction < 1:
        raise KexpError(f"model.attention_reduction: {reduction} must be a positive integer")
    return max(1, channels // reduction)


def se_block(x, *, reduction: int = 16, l1: float = 0.0, l2: float = 0.0, name: str):
    channels = x.shape[-1]
    s = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_squeeze")(x)
    s = layers.Dense(_bottleneck_units(channels, reduction), activation="relu",
                     kernel_initializer="he_normal", kernel_regularizer=regularizer(l1, l2),
                     name=f"{name}_reduce")(s)
    s = layers.Dense(channels, activation="sigmoid", kernel_regularizer=regularizer(l1, l2),
                     name=f"{name}_expand")(s)
    return layers.Multiply(name=f"{name}_scale")([x, s])


def cbam_block(x, *, reduction: int = 16, l1: float = 0.0, l2: float = 0.0, name: str):
    channels = x.shape[-1]
    # one MLP shared by both pooled descriptors, as in the paper
    hidden = layers.Dense(_bottleneck_units(channels, reduction), activation="relu",
                          kernel_initializer="he_normal", kernel_regularizer=regularizer(l1, l2),
                          name=f"{name}_mlp_hidden")
    out = layers.Dense(channels, kernel_regularizer=regularizer(l1, l2), name=f"{name}_mlp_out")
    avg = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_avg_pool")(x)
    mx = layers.GlobalMaxPooling2D(keepdims=True, name=f"{name}_max_pool")(x)
    gate = layers.Add(name=f"{name}_channel_sum")([out(hidden(avg)), out(hidden(mx))])
    gate = layers.Activation("sigmoid", name=f"{name}_channel_gate")(gate)
    x = layers.Multiply(name=f"{name}_channel_scale")([x, gate])

    maps = ChannelPool(name=f"{name}_spatial_pool")(x)
    spatial = layers.Conv2D(1, 7, padding="same", activation="sigmoid",
                            kernel_regularizer=regularizer(l1, l2),
                            name=f"{name}_spatial_gate")(maps)
    return layers.Multiply(name=f"{name}_spatial_scale")([x, spatial])
