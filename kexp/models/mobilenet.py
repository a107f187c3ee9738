"""MobileNet v1 (Howard et al., 2017) and v2 (Sandler et al., 2018), one builder.

- v1: a 3x3 stride-2 stem conv, then 13 depthwise separable blocks (3x3 depthwise conv -> BN
  -> ReLU6, 1x1 pointwise conv -> BN -> ReLU6) with the paper's channels and strides
  (Table 1), global average pooling, dropout, classifier. Same layers and parameter count as
  `keras.applications.MobileNet` (whose top is a 1x1 conv on the pooled 1x1 map: the same
  weights as our Dense).
- v2: a 3x3 stride-2 stem conv, 17 inverted residual blocks with linear bottlenecks (1x1
  expansion conv x6 -> BN -> ReLU6, 3x3 depthwise -> BN -> ReLU6, 1x1 projection -> BN, no
  activation; a residual add when the shapes match), a 1x1 conv to 1280 channels, pooling,
  dropout, classifier. Same layers and parameter count as `keras.applications.MobileNetV2`.

Channel counts are rounded as Keras rounds them (v1: `int(channels * multiplier)`; v2: to
multiples of 8 with `make_divisible`, the last conv kept at 1280 for multipliers <= 1), so
the parameter counts equal Keras' at every `alpha`, not only at 1.0.

Stride-2 convs use "same" padding; for even sizes that pads one row/column at the bottom and
right exactly like Keras' explicit `ZeroPadding2D` + "valid" pair, and it lets any image size
through: 224 -> 7x7 features, 32x32 CIFAR -> 1x1, 28x28 MNIST -> 1x1 (5 stride-2 stages).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

from kexp.errors import KexpError
from kexp.models.attention import attention_block, check_attention
from kexp.models.layers import check_activation, check_initializer, image_input, regularizer

VERSIONS = (1, 2)

# v1 (Table 1 of the paper): (pointwise channels, depthwise stride) of the 13 blocks
V1_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1),
             (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))

# v2 (Table 2 of the paper): (expansion t, output channels c, repeats n, first stride s)
V2_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
             (6, 160, 3, 2), (6, 320, 1, 1))


def make_divisible(value: float, divisor: int = 8) -> int:
    """`value` rounded to the nearest multiple of `divisor`, never below 90% of it (Keras')."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def _activation(name: str, layer_name: str) -> layers.Layer:
    # ReLU6 is the papers' activation (bounded for low-precision inference); a ReLU layer with
    # max_value shows it in the model summary
    if name == "relu6":
        return layers.ReLU(6.0, name=layer_name)
    return layers.Activation(name, name=layer_name)


@image_input
def mobilenet(input_shape: Sequence[int], version: int = 1,
              alpha: float = 1.0, first_stride: int = 2, attention: str = "none",
              attention_reduction: int = 4, activation: str = "relu6", dropout: float = 0.001,
              batch_norm: bool = True, l1: float = 0.0, l2: float = 0.0,
              kernel_initializer: str = "he_normal", width: float = 1.0) -> keras.Model:
    """Builds a MobileNet v1 or v2.

    Args:
        input_shape: (height, width, channels) of one image; any size and channel count
            (5 stride-2 stages with "same" padding: 224 -> 7x7, 32 or 28 -> 1x1 features).
        version: 1 (depthwise separable blocks) or 2 (inverted residuals, linear
            bottlenecks, expansion 6).
        alpha: the papers' width multiplier on every layer's channels (0.25, 0.5, 0.75, 1.0
            and 1.4 are the published ones), rounded as Keras rounds it.
        first_stride: stride of the stem conv: 2 as in the papers, 1 for small (CIFAR-size)
            images, which keeps 4x more resolution in every stage (32x32 -> 2x2 features).
        attention: "none", "se" or "cbam" attention in every block, placed after the
            depthwise conv's activation (where MobileNetV3 puts squeeze-and-excitation).
        attention_reduction: bottleneck ratio of the attention MLP (4 in MobileNetV3).
        activation: activation after the stem, depthwise, pointwise (v1) and expansion (v2)
            convs: "relu6" (the papers', default) or any of kexp's shared activations. v2's
            projection convs stay linear.
        dropout: dropout rate before the classifier (0.001 in Keras' v1, 0.2 in the
            reference v2 implementations).
        batch_norm: batch normalization after every conv, as in the papers. False removes
            it and gives the convs biases instead (these nets train poorly without it).
        l1: L1 weight penalty on every conv, depthwise and dense kernel (the v1 paper uses
            little or no weight decay on depthwise filters; set both to 0 to follow it).
        l2: L2 weight penalty on every conv, depthwise and dense kernel.
        kernel_initializer: initializer of every conv and depthwise kernel.
        width: kexp's channel multiplier shared by all families; it multiplies `alpha`
            (channels use `alpha * width`), so a `model.width` sweep works here as for every
            other model. Keep it 1.0 and use `alpha` to follow the papers.

    Returns:
        A `keras.Model` named "mobilenet" (v1) or "mobilenet_v2", whose output is one
        feature vector per example (no head: the task adds its own, kexp.tasks).
    """
    if isinstance(version, bool) or version not in VERSIONS:
        raise KexpError(f"model.version: {version!r} is not a MobileNet version; valid: 1, 2")
    for key, value in (("alpha", alpha), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise KexpError(f"model.{key}: {value!r} is not valid; expected a positive "
                            f"width multiplier such as 0.5, 0.75, 1.0 or 1.4")
    if isinstance(first_stride, bool) or first_stride not in (1, 2):
        raise KexpError(f"model.first_stride: {first_stride!r} is not valid; expected 1 "
                        f"(small images) or 2 (the papers')")
    check_activation(activation)
    check_attention(attention)
    check_initializer(kernel_initializer)

    common = dict(multiplier=float(alpha) * float(width), first_stride=first_stride,
                  attention=attention, attention_reduction=attention_reduction,
                  activation=activation, batch_norm=batch_norm, l1=l1, l2=l2,
                  kernel_initializer=kernel_initializer)
    inputs = keras.Input(shape=tuple(input_shape), name="inputs")
    x = _v1_body(inputs, **common) if version == 1 else _v2_body(inputs, **common)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    outputs = x  # features: the task puts its head on them (kexp.tasks)
    return keras.Model(inputs, outputs, name="mobilenet" if version == 1 else "mobilenet_v2")


def _conv(x, filters, kernel_size, strides, *, batch_norm, bn_args, l1, l2, kernel_initializer,
          name):
    x = layers.Conv2D(filters, kernel_size, strides=strides, padding="same",
                      use_bias=not batch_norm, kernel_initializer=kernel_initializer,
                      kernel_regularizer=regularizer(l1, l2), name=name)(x)
    return layers.BatchNormalization(**bn_args, name=f"{name}_bn")(x) if batch_norm else x


def _depthwise(x, strides, *, batch_norm, bn_args, l1, l2, kernel_initializer, name):
    x = layers.DepthwiseConv2D(3, strides=strides, padding="same", use_bias=not batch_norm,
                               depthwise_initializer=kernel_initializer,
                               depthwise_regularizer=regularizer(l1, l2), name=name)(x)
    return layers.BatchNormalization(**bn_args, name=f"{name}_bn")(x) if batch_norm else x


def _v1_body(x, *, multiplier, first_stride, attention, attention_reduction, activation,
             batch_norm, l1, l2, kernel_initializer):
    def channels(c):
        return max(1, int(c * multiplier))

    # Keras' v1 keeps BatchNormalization's defaults (momentum 0.99, epsilon 1e-3)
    opts = dict(batch_norm=batch_norm, bn_args={}, l1=l1, l2=l2,
                kernel_initializer=kernel_initializer)
    x = _conv(x, channels(32), 3, first_stride, name="conv1", **opts)
    x = _activation(activation, "conv1_act")(x)
    for i, (filters, stride) in enumerate(V1_BLOCKS, start=1):
        x = _depthwise(x, stride, name=f"conv_dw_{i}", **opts)
        x = _activation(activation, f"conv_dw_{i}_act")(x)
        x = attention_block(x, attention, reduction=attention_reduction, l1=l1, l2=l2,
                            name=f"block_{i}")
        x = _conv(x, channels(filters), 1, 1, name=f"conv_pw_{i}", **opts)
        x = _activation(activation, f"conv_pw_{i}_act")(x)
    return x


def _v2_body(x, *, multiplier, first_stride, attention, attention_reduction, activation,
             batch_norm, l1, l2, kernel_initializer):
    # Keras' v2 (and the reference TF-slim code) use momentum 0.999, epsilon 1e-3
    opts = dict(batch_norm=batch_norm, bn_args=dict(momentum=0.999, epsilon=1e-3), l1=l1,
                l2=l2, kernel_initializer=kernel_initializer)
    x = _conv(x, make_divisible(32 * multiplier), 3, first_stride, name="conv1", **opts)
    x = _activation(activation, "conv1_act")(x)
    block = 0
    for expansion, filters, repeats, first in V2_STAGES:
        out_channels = make_divisible(int(filters * multiplier))
        for r in range(repeats):
            stride = first if r == 0 else 1
            name = f"block_{block}"
            in_channels = x.shape[-1]
            y = x
            if expansion != 1:
                y = _conv(y, expansion * in_channels, 1, 1, name=f"{name}_expand", **opts)
                y = _activation(activation, f"{name}_expand_act")(y)
            y = _depthwise(y, stride, name=f"{name}_depthwise", **opts)
            y = _activation(activation, f"{name}_depthwise_act")(y)
            y = attention_block(y, attention, reduction=attention_reduction, l1=l1, l2=l2,
                                name=name)
            # linear bottleneck: no activation after the projection
            y = _conv(y, out_channels, 1, 1, name=f"{name}_project", **opts)
            if stride == 1 and in_channels == out_channels:
                y = layers.Add(name=f"{name}_add")([x, y])
            x = y
            block += 1
    last = make_divisible(1280 * multiplier) if multiplier > 1.0 else 1280
    x = _conv(x, last, 1, 1, name="conv_last", **opts)
    return _activation(activation, "conv_last_act")(x)
