"""Residual networks, one builder for three layouts chosen by `depth` (table `LAYOUTS`).

- CIFAR ResNets 20/32/44/56/110 (He et al., 2016, "Deep Residual Learning for Image
  Recognition", sec. 4.2): depth 6n+2, a 3x3 stem conv with 16 channels, three stages of n
  basic blocks (two 3x3 convs) with 16-32-64 channels, the 2nd and 3rd starting with stride 2,
  global average pooling, classifier. Shortcuts that change shape use option A of the paper
  (`shortcut: zero_pad`: subsample, then append zero channels; parameter free), the option
  its Table 6 counts are for: ResNet-20 has 269,722 trainable parameters (0.27 M), ResNet-56
  853,018 (0.85 M) with 10 classes. `shortcut: projection` is option B (1x1 conv + BN).
- ImageNet ResNets 18/34 (basic blocks) and 50/101/152 (bottleneck blocks 1x1-3x3-1x1 with
  4x expansion): a 7x7/2 stem conv and a 3x3/2 max pool, four stages of 64-128-256-512
  channels, projection shortcuts (option B) where the shape changes. The stride of a
  bottleneck block sits on its 3x3 conv ("ResNet v1.5", as torchvision and NVIDIA's
  reference), not on the first 1x1 conv as in the original Caffe model and
  `keras.applications.ResNet50`; the parameter count is the same.
- ResNet-9 (depth 9), the fast CIFAR net of David Page's DAWNBench entry ("How to train your
  ResNet"): prep conv 64; conv 128 + 2x2 max pool + residual (two convs 128); conv 256 + max
  pool; conv 512 + max pool + residual (two convs 512); global max pool; classifier.
  6,573,130 trainable parameters with 10 classes (Page's linear layer has no bias and is
  followed by a x0.125 scale; here the shared classifier keeps its bias and no scale).

`block_version: v2` is the pre-activation ResNet (He et al., 2016b, "Identity Mappings in
Deep Residual Networks"): every block is BN -> act -> conv (twice, or three times for
bottlenecks) added to an untouched shortcut, projection shortcuts read the pre-activated
input, the stem has no BN/act of its own and one BN -> act follows the last stage (the layout
of `keras.applications.ResNet50V2`, whose strides sit at the end of each stage instead of the
start: same parameters). `attention: se|cbam` re-weights every residual branch before the
addition (Hu et al., 2018: SE-ResNet).

Convs carry no bias when batch norm follows them (`keras.applications.ResNet50` keeps one per
conv, 26,560 parameters more that batch norm cancels out). Strided 3x3 and 7x7 convs pad one
(three) pixels on every side, so each output is centred on the input pixel that a strided
1x1 shortcut samples; "same" padding would shift the branch by one pixel against it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import keras
from keras import layers, ops

from kexp.errors import KexpError
from kexp.models.attention import attention_block, check_attention
from kexp.models.layers import (
    check_activation,
    check_choice,
    check_initializer,
    image_input,
    pad_to,
    regularizer,
    scaled,
)


class Layout(NamedTuple):
    """How a depth is built."""

    kind: str  # "cifar" (3x3 stem), "imagenet" (7x7/2 stem + max pool), "resnet9" (Page's)
    block: str  # "basic" (two 3x3 convs) or "bottleneck" (1x1 -> 3x3 -> 1x1, x4 channels)
    stem: int  # channels of the stem conv
    channels: tuple[int, ...]  # per stage (bottleneck: the inner channels; out = 4x)
    blocks: tuple[int, ...]  # residual blocks per stage


LAYOUTS: dict[int, Layout] = {
    9: Layout("resnet9", "basic", 64, (128, 256, 512), (1, 0, 1)),
    20: Layout("cifar", "basic", 16, (16, 32, 64), (3, 3, 3)),
    32: Layout("cifar", "basic", 16, (16, 32, 64), (5, 5, 5)),
    44: Layout("cifar", "basic", 16, (16, 32, 64), (7, 7, 7)),
    56: Layout("cifar", "basic", 16, (16, 32, 64), (9, 9, 9)),
    110: Layout("cifar", "basic", 16, (16, 32, 64), (18, 18, 18)),
    18: Layout("imagenet", "basic", 64, (64, 128, 256, 512), (2, 2, 2, 2)),
    34: Layout("imagenet", "basic", 64, (64, 128, 256, 512), (3, 4, 6, 3)),
    50: Layout("imagenet", "bottleneck", 64, (64, 128, 256, 512), (3, 4, 6, 3)),
    101: Layout("imagenet", "bottleneck", 64, (64, 128, 256, 512), (3, 4, 23, 3)),
    152: Layout("imagenet", "bottleneck", 64, (64, 128, 256, 512), (3, 8, 36, 3)),
}
EXPANSION = 4  # output channels of a bottleneck block per inner channel
BLOCK_VERSIONS = ("v1", "v2")
SHORTCUTS = ("auto", "zero_pad", "projection")
MIN_SIZE = {"cifar": 8, "resnet9": 8}  # smallest side taken as it is
IMAGENET_SIZE = 32  # the ImageNet layouts downsample 32x; smaller images are zero-padded to it


@keras.saving.register_keras_serializable(package="kexp")
class ShortcutChannelPad(layers.Layer):
    """Appends `extra` all-zero channels: the parameter-free shortcut of option A."""

    def __init__(self, extra: int, **kwargs):
        super().__init__(**kwargs)
        self.extra = int(extra)

    def call(self, x):
        return ops.pad(x, [[0, 0], [0, 0], [0, 0], [0, self.extra]])

    def compute_output_shape(self, input_shape):
        channels = input_shape[-1]
        return (*input_shape[:-1], None if channels is None else channels + self.extra)

    def get_config(self):
        return {**super().get_config(), "extra": self.extra}


@dataclass(frozen=True)
class _Ops:
    """The shared knobs, applied the same way to every conv, norm and activation."""

    activation: str
    batch_norm: bool
    l1: float
    l2: float
    kernel_initializer: str

    def conv(self, x, filters: int, kernel: int, name: str, stride: int = 1):
        padding = "same"
        if stride > 1 and kernel > 1:  # symmetric padding: centred like a strided 1x1 conv
            x = layers.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x)
            padding = "valid"
        return layers.Conv2D(filters, kernel, strides=stride, padding=padding,
                             use_bias=not self.batch_norm,
                             kernel_initializer=self.kernel_initializer,
                             kernel_regularizer=regularizer(self.l1, self.l2), name=name)(x)

    def norm(self, x, name: str):
        return layers.BatchNormalization(name=name)(x) if self.batch_norm else x

    def act(self, x, name: str):
        return layers.Activation(self.activation, name=name)(x)

    def norm_act(self, x, name: str):
        return self.act(self.norm(x, f"{name}_bn"), f"{name}_act")


@image_input
def resnet(input_shape: Sequence[int], depth: int = 20,
           block_version: str = "v1", shortcut: str = "auto", attention: str = "none",
           attention_reduction: int = 16, activation: str = "relu", dropout: float = 0.0,
           batch_norm: bool = True, l1: float = 0.0, l2: float = 0.0,
           kernel_initializer: str = "he_normal", width: float = 1.0) -> keras.Model:
    """Builds a ResNet: CIFAR (20-110), ImageNet (18-152) or the fast ResNet-9.

    Args:
        input_shape: (height, width, channels) of one image. CIFAR depths and ResNet-9 take
            any image of at least 8x8 as it is; ImageNet depths downsample 32x and zero-pad
            images smaller than 32x32 up to 32x32 inside the model.
        depth: a key of `LAYOUTS`: 20, 32, 44, 56, 110 (CIFAR), 18, 34, 50, 101, 152
            (ImageNet) or 9 (ResNet-9).
        block_version: "v1" (conv -> BN -> act, He et al. 2016) or "v2" (pre-activation,
            BN -> act -> conv, He et al. 2016b).
        shortcut: where a block changes shape: "zero_pad" (option A: subsample and append
            zero channels), "projection" (option B: strided 1x1 conv, + BN in v1), or "auto"
            (zero_pad for the CIFAR depths, projection for the ImageNet depths, as in the
            paper). ResNet-9's residual blocks never change shape.
        attention: "none", "se" or "cbam" on every residual branch before the addition.
        attention_reduction: channel reduction of the attention MLP.
        activation: activation after every batch norm.
        dropout: dropout rate before the classifier.
        batch_norm: batch normalization around every conv; False drops it and gives the
            convs biases.
        l1: L1 weight penalty on every kernel.
        l2: L2 weight penalty on every kernel (SGD weight decay `wd` is `l2 = wd / 2`).
        kernel_initializer: initializer of every conv kernel.
        width: multiplier on the channels of the stem and every stage.

    Returns:
        A `keras.Model` named "resnet<depth>" ("resnet<depth>v2" for v2), whose output is one
        feature vector per example (no head: the task adds its own, kexp.tasks).
    """
    if depth not in LAYOUTS:
        raise KexpError(f"model.depth: {depth} is not a ResNet depth; valid: 20, 32, 44, 56, "
                        f"110 (CIFAR), 18, 34, 50, 101, 152 (ImageNet), 9 (ResNet-9)")
    check_choice("block_version", block_version, BLOCK_VERSIONS)
    check_choice("shortcut", shortcut, SHORTCUTS)
    check_attention(attention)
    layout = LAYOUTS[depth]
    name = f"resnet{depth}" + ("v2" if block_version == "v2" else "")
    smallest = MIN_SIZE.get(layout.kind, 1)
    if min(input_shape[:2]) < smallest:
        raise KexpError(f"model={name} needs images of at least {smallest}x{smallest}, got "
                        f"{tuple(input_shape)}; an ImageNet depth (model.depth=18) zero-pads "
                        f"small images")
    if shortcut == "auto":
        shortcut = "zero_pad" if layout.kind == "cifar" else "projection"
    net = _Ops(check_activation(activation), bool(batch_norm), l1, l2,
               check_initializer(kernel_initializer))
    pre = block_version == "v2"

    def branch_end(y, block_name):
        return attention_block(y, attention, reduction=attention_reduction, l1=l1, l2=l2,
                               name=block_name)

    inputs = keras.Input(shape=tuple(input_shape), name="inputs")
    x = inputs
    if layout.kind == "imagenet":
        x = pad_to(x, IMAGENET_SIZE, input_shape)
        x = net.conv(x, scaled(layout.stem, width), 7, "stem_conv", stride=2)
        if not pre:
            x = net.norm_act(x, "stem")
        x = layers.ZeroPadding2D(1, name="stem_pool_pad")(x)
        x = layers.MaxPooling2D(3, strides=2, name="stem_pool")(x)
    else:
        x = net.conv(x, scaled(layout.stem, width), 3, "stem_conv")
        if not pre or layout.kind == "resnet9":  # ResNet-9's prep layer is conv -> BN -> act
            x = net.norm_act(x, "stem")

    for stage, (channels, blocks) in enumerate(zip(layout.channels, layout.blocks,
                                                   strict=True)):
        channels = scaled(channels, width)
        if layout.kind == "resnet9":
            x = net.conv(x, channels, 3, f"stage{stage}_conv")
            x = net.norm_act(x, f"stage{stage}")
            x = layers.MaxPooling2D(2, name=f"stage{stage}_pool")(x)
            for b in range(blocks):
                x = _resnet9_block(x, net, pre, f"stage{stage}_block{b}", branch_end)
            continue
        for b in range(blocks):
            stride = 2 if stage > 0 and b == 0 else 1
            block = _basic_block if layout.block == "basic" else _bottleneck_block
            x = block(x, net, channels, stride, pre, shortcut, f"stage{stage}_block{b}",
                      branch_end)

    if pre and layout.kind != "resnet9":
        x = net.norm_act(x, "post")
    if layout.kind == "resnet9":
        x = layers.GlobalMaxPooling2D(name="pool")(x)
    else:
        x = layers.GlobalAveragePooling2D(name="pool")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    outputs = x  # features: the task puts its head on them (kexp.tasks)
    return keras.Model(inputs, outputs, name=name)


def _shortcut(x, preact, net: _Ops, out_channels: int, stride: int, kind: str, pre: bool,
              name: str):
    """Identity where the shape stays; otherwise option A (zero_pad) or B (projection)."""
    in_channels = x.shape[-1]
    if stride == 1 and in_channels == out_channels:
        return x
    if kind == "projection":  # v2 projects the pre-activated input, without a BN after it
        s = net.conv(preact if pre else x, out_channels, 1, f"{name}_shortcut_conv",
                     stride=stride)
        return s if pre else net.norm(s, f"{name}_shortcut_bn")
    if stride > 1:
        x = layers.MaxPooling2D(1, strides=stride, name=f"{name}_shortcut_subsample")(x)
    if out_channels > in_channels:
        x = ShortcutChannelPad(out_channels - in_channels, name=f"{name}_shortcut_pad")(x)
    return x


def _basic_block(x, net: _Ops, channels: int, stride: int, pre: bool, shortcut: str,
                 name: str, branch_end):
    """Two 3x3 convs; v1: conv-BN-act-conv-BN + shortcut -> act; v2: (BN-act-conv) x2."""
    preact = net.norm_act(x, f"{name}_pre") if pre else x
    y = net.conv(preact, channels, 3, f"{name}_conv1", stride=stride)
    y = net.norm_act(y, f"{name}_mid")
    y = net.conv(y, channels, 3, f"{name}_conv2")
    if not pre:
        y = net.norm(y, f"{name}_bn2")
    return _merge(x, preact, y, net, channels, stride, shortcut, pre, name, branch_end)


def _bottleneck_block(x, net: _Ops, channels: int, stride: int, pre: bool, shortcut: str,
                      name: str, branch_end):
    """1x1 (channels) -> 3x3 (channels, the stride) -> 1x1 (4 x channels)."""
    out_channels = EXPANSION * channels
    preact = net.norm_act(x, f"{name}_pre") if pre else x
    y = net.conv(preact, channels, 1, f"{name}_conv1")
    y = net.norm_act(y, f"{name}_mid1")
    y = net.conv(y, channels, 3, f"{name}_conv2", stride=stride)
    y = net.norm_act(y, f"{name}_mid2")
    y = net.conv(y, out_channels, 1, f"{name}_conv3")
    if not pre:
        y = net.norm(y, f"{name}_bn3")
    return _merge(x, preact, y, net, out_channels, stride, shortcut, pre, name, branch_end)


def _merge(x, preact, y, net: _Ops, channels: int, stride: int, shortcut: str, pre: bool,
           name: str, branch_end):
    """branch (+ attention) + shortcut; v1 activates the sum, v2 leaves it for the next block."""
    y = branch_end(y, name)
    s = _shortcut(x, preact, net, channels, stride, shortcut, pre, name)
    out = layers.Add(name=f"{name}_add")([s, y])
    return out if pre else net.act(out, f"{name}_out")


def _resnet9_block(x, net: _Ops, pre: bool, name: str, branch_end):
    """Page's residual: x + (conv-BN-act) x2; v2 orders the branch (BN-act-conv) x2."""
    channels = x.shape[-1]
    y = x
    for i in (1, 2):
        if pre:
            y = net.conv(net.norm_act(y, f"{name}_pre{i}"), channels, 3, f"{name}_conv{i}")
        else:
            y = net.norm_act(net.conv(y, channels, 3, f"{name}_conv{i}"), f"{name}_post{i}")
    y = branch_end(y, name)
    return layers.Add(name=f"{name}_add")([x, y])
