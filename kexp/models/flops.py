"""Forward cost of a built model: multiply-adds per example, read off its layer graph.

Counted: every layer that multiplies by a weight (Dense, EinsumDense, Conv1D/2D/3D and their
transposes, DepthwiseConv, SeparableConv, MultiHeadAttention including its score and context
products, SimpleRNN/LSTM/GRU over all time steps, Bidirectional), once per call, so a layer shared
between two branches counts twice. Not counted: element-wise work (batch norm, activations,
additions, pooling, softmax) and lookups (Embedding), which is also how the papers' "mult-adds"
are counted (ResNet-50 3.8-4.1 G, MobileNet 569 M, MobileNetV2 300 M).

FLOPs are reported as 2 x multiply-adds.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import keras
from keras import layers

_GATES = {layers.SimpleRNN: 1, layers.GRU: 3, layers.LSTM: 4}


def count_flops(model: keras.Model) -> int:
    """Forward FLOPs for one example (2 x multiply-adds)."""
    return 2 * count_macs(model)


def count_macs(model: keras.Model) -> int:
    """Forward multiply-adds for one example."""
    return sum(_layer_macs(node.operation, node) for node in _nodes(model))


def _nodes(model: keras.Model) -> Iterator[Any]:
    functional = getattr(model, "_functional", None) or model  # Sequential wraps a Functional
    by_depth = getattr(functional, "_nodes_by_depth", None)
    if by_depth is None:
        raise ValueError(f"cannot count the cost of {model.name}: not a functional or "
                         f"Sequential model")
    for depth in sorted(by_depth, reverse=True):
        yield from by_depth[depth]


def _shape(tensor: Any) -> tuple[int, ...]:
    """Shape of one example (batch axis dropped), unknown sizes read as 1."""
    return tuple(1 if d is None else int(d) for d in tensor.shape[1:])


def _size(kernel: Any) -> int:
    return math.prod(int(d) for d in kernel.shape)


def _layer_macs(layer: Any, node: Any) -> int:
    if isinstance(layer, keras.Model):
        return count_macs(layer)
    if not node.output_tensors or not node.input_tensors:
        return 0
    inputs, outputs = node.arguments.args, node.output_tensors
    out = _shape(outputs[0])
    if isinstance(layer, layers.Bidirectional):
        return _rnn_macs(layer.forward_layer, inputs[0]) + \
            _rnn_macs(layer.backward_layer, inputs[0])
    if isinstance(layer, tuple(_GATES)):
        return _rnn_macs(layer, inputs[0])
    if isinstance(layer, layers.MultiHeadAttention):
        return _attention_macs(layer, inputs)
    if isinstance(layer, layers.EinsumDense):
        return _einsum_macs(layer.equation, layer.kernel, out)
    if isinstance(layer, layers.Dense):
        return math.prod(_shape(inputs[0])[:-1]) * _size(layer.kernel)
    if isinstance(layer, layers.SeparableConv2D | layers.SeparableConv1D):
        # the depthwise step runs at the output resolution (strides apply to it)
        return math.prod(out[:-1]) * (_size(layer.depthwise_kernel) + _size(layer.pointwise_kernel))
    if isinstance(layer, layers.Conv1DTranspose | layers.Conv2DTranspose |
                  layers.Conv3DTranspose):
        return math.prod(_shape(inputs[0])[:-1]) * _size(layer.kernel)
    if isinstance(layer, layers.DepthwiseConv1D | layers.DepthwiseConv2D):
        return math.prod(out[:-1]) * _size(layer.kernel)
    if isinstance(layer, layers.Conv1D | layers.Conv2D | layers.Conv3D):
        return math.prod(out[:-1]) * _size(layer.kernel)
    return 0


def _rnn_macs(layer: Any, inputs: Any) -> int:
    steps, features = _shape(inputs)[-2:]
    gates = next(g for cls, g in _GATES.items() if isinstance(layer, cls))
    units = layer.units
    return steps * gates * (features * units + units * units)


def _attention_macs(layer: layers.MultiHeadAttention, inputs: Sequence[Any]) -> int:
    query, value = inputs[0], inputs[1]
    key = inputs[2] if len(inputs) > 2 and inputs[2] is not None else value
    heads, key_dim = layer.num_heads, layer.key_dim
    value_dim = layer.value_dim or key_dim
    t, s = _shape(query)[-2], _shape(value)[-2]
    projections = (t * _shape(query)[-1] * heads * key_dim
                   + s * _shape(key)[-1] * heads * key_dim
                   + s * _shape(value)[-1] * heads * value_dim)
    scores_and_context = heads * t * s * (key_dim + value_dim)
    output = t * heads * value_dim * _size(layer._output_dense.kernel) // (heads * value_dim)
    return projections + scores_and_context + output


def _einsum_macs(equation: str, kernel: Any, out: tuple[int, ...]) -> int:
    """Output elements x the size of the kernel axes that are summed over."""
    operands, output_letters = equation.replace("...", "").split("->")
    kernel_letters = operands.split(",")[1]
    summed = [int(dim) for letter, dim in zip(kernel_letters, kernel.shape, strict=True)
              if letter not in output_letters]
    return math.prod(out) * math.prod(summed)
