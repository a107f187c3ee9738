"""Pointer network: an encoder-decoder whose output points at positions of its input
(Vinyals, Fortunato & Jaitly, 2015, "Pointer Networks").

points (B, k, d) -> Dense (the point embedding) -> GRU | LSTM encoder, every step's output
kept; decoder input pointer ids (B, L) -> the embedding of the point each id names (the
decoder reads the point it pointed at last; START and END have learned vectors of their own)
-> GRU | LSTM decoder started from the encoder's final state -> additive attention (Bahdanau
et al., 2015) over [END, the encoder's outputs]: the scores u_j = v^T tanh(W1 e_j + W2 d_t)
ARE the output logits, so the output vocabulary is the input itself plus END.

Pointer ids (kexp.data.points): 0 pads, 1 is START, 2 is END, 3 + i is input point i; the
logits have k + 3 columns, those of padding and START a constant -1e9 (never predicted). The
decoder runs forward only and the padding (id 0 at the end of a decoder input) is masked in
its recurrent layer, so the logits at position t depend only on the points and the decoder
input ids 0..t: padded positions never change the real ones.

A pointer network is neither a backbone (one input, features out) nor a translation model
(token ids in, a fixed vocabulary out): `@pointer_network` marks it, task=pointer accepts
only such builders and the other tasks refuse them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras
from keras import layers, ops

from kexp.errors import KexpError
from kexp.models.encoder_decoder import TARGET, DropMask
from kexp.models.layers import check_choice, check_initializer, regularizer, scaled
from kexp.models.sequence import PaddingMask, check_positive, check_rate, check_width

POINTS = "points"  # name of the points input, (batch, points, coordinates) float32
LOGITS = "pointer_logits"  # name of the output layer, (batch, length, points + 3) float32
SPECIAL = 3  # ids before the first point's: padding, START, END
NEVER = -1e9  # the logit of padding and START
CELLS = {"gru": keras.layers.GRU, "lstm": keras.layers.LSTM}


def pointer_network(builder: Callable[..., keras.Model]) -> Callable[..., keras.Model]:
    """Marks a pointer-network builder: `task=pointer` accepts only these, and the other
    tasks refuse them (their model reads points and writes positions of them)."""
    builder.pointer_network = True
    return builder


def is_pointer_network(builder: Any) -> bool:
    return bool(getattr(builder, "pointer_network", False))


@keras.saving.register_keras_serializable(package="kexp")
class PointerInputs(layers.Layer):
    """[embedded points (B, k, e), pointer ids (B, L)] -> (B, L, e): for id 3 + i the
    embedding of point i, for padding, START and END a learned vector each."""

    def build(self, input_shape):
        self.special = self.add_weight(shape=(SPECIAL, int(input_shape[0][-1])),
                                       initializer="random_normal", name="special")
        super().build(input_shape)

    def call(self, inputs):
        points, ids = inputs
        batch = ops.shape(points)[0]
        special = ops.broadcast_to(ops.cast(self.special, points.dtype)[None],
                                   (batch, SPECIAL, ops.shape(points)[-1]))
        table = ops.concatenate([special, points], axis=1)  # (B, k + 3, e)
        index = ops.broadcast_to(ops.expand_dims(ops.cast(ids, "int32"), -1),
                                 (batch, ops.shape(ids)[1], ops.shape(points)[-1]))
        return ops.take_along_axis(table, index, axis=1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[1], input_shape[0][-1])


@keras.saving.register_keras_serializable(package="kexp")
class PointerScores(layers.Layer):
    """[decoder outputs (B, L, h), encoder outputs (B, k, h)] -> float32 logits (B, L, k + 3):
    the additive attention scores v^T tanh(W1 e_j + W2 d_t) over [a learned END state, the
    encoder outputs], behind a constant -1e9 for padding and START."""

    def __init__(self, units: int, kernel_initializer: str = "glorot_uniform",
                 l1: float = 0.0, l2: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.kernel_initializer = kernel_initializer
        self.l1, self.l2 = float(l1), float(l2)

    def build(self, input_shape):
        decoder_width, encoder_width = int(input_shape[0][-1]), int(input_shape[1][-1])
        penalty = regularizer(self.l1, self.l2)
        self.w_encoder = self.add_weight(shape=(encoder_width, self.units), name="w_encoder",
                                         initializer=self.kernel_initializer,
                                         regularizer=penalty)
        self.w_decoder = self.add_weight(shape=(decoder_width, self.units), name="w_decoder",
                                         initializer=self.kernel_initializer,
                                         regularizer=penalty)
        self.v = self.add_weight(shape=(self.units,), name="v", initializer="random_normal",
                                 regularizer=penalty)
        self.end = self.add_weight(shape=(encoder_width,), name="end_state",
                                   initializer="random_normal")
        super().build(input_shape)

    def call(self, inputs):
        decoded, encoded = inputs
        batch = ops.shape(encoded)[0]
        end = ops.broadcast_to(ops.cast(self.end, encoded.dtype)[None, None],
                               (batch, 1, ops.shape(encoded)[-1]))
        keys = ops.matmul(ops.concatenate([end, encoded], axis=1), self.w_encoder)
        queries = ops.matmul(decoded, self.w_decoder)
        # (B, L, 1, a) + (B, 1, k + 1, a) -> (B, L, k + 1)
        scores = ops.tensordot(ops.tanh(queries[:, :, None, :] + keys[:, None, :, :]),
                               self.v, axes=1)
        scores = ops.cast(scores, "float32")
        never = ops.full((batch, ops.shape(scores)[1], SPECIAL - 1), NEVER, "float32")
        return ops.concatenate([never, scores], axis=-1)

    def compute_output_shape(self, input_shape):
        points = input_shape[1][1]
        return (*input_shape[0][:2], None if points is None else points + SPECIAL)

    def get_config(self):
        return {**super().get_config(), "units": self.units,
                "kernel_initializer": self.kernel_initializer, "l1": self.l1, "l2": self.l2}


@pointer_network
def pointer_net(input_shape: Sequence[int | None], target_shape: Sequence[int | None],
                cell: str = "lstm", units: int = 256, embedding_dim: int = 128,
                attention_units: int = 256, dropout: float = 0.0, l1: float = 0.0,
                l2: float = 0.0, kernel_initializer: str = "glorot_uniform",
                width: float = 1.0) -> keras.Model:
    """Builds a pointer network (Vinyals et al., 2015).

    Args:
        input_shape: `(points, coordinates)` of one example; points may be None (any number
            of points: the logits are then as wide as each batch's points + 3).
        target_shape: `(length,)` of the decoder input pointer ids (points + 1 for an answer
            that may name every point, then END); `(None,)`: any length.
        cell: recurrent cell of the encoder and the decoder, "gru" or "lstm".
        units: units of the encoder and of the decoder (one layer each); the decoder starts
            from the encoder's final state.
        embedding_dim: size of the point embedding (a Dense on the coordinates), which both
            the encoder and the decoder read.
        attention_units: size of the additive attention's projections W1 and W2 (and of v).
        dropout: dropout rate on the inputs of both recurrent layers (the embeddings) and on
            the decoder outputs the attention reads.
        l1: L1 penalty on every weight matrix: the embedding, the recurrent layers' input and
            recurrent kernels and the attention's W1, W2 and v.
        l2: L2 penalty on the same weights.
        kernel_initializer: initializer of the embedding, the recurrent layers' input kernels
            and the attention projections (the recurrent kernels stay orthogonal).
        width: multiplier on `units`, `embedding_dim` and `attention_units`.

    Returns:
        A `keras.Model` named "pointer_net" from [points (batch, points, coordinates) float32,
        decoder input pointer ids (batch, length) int32] (inputs named "points" and
        "target_ids") to float32 logits (batch, length, points + 3) from the layer named
        "pointer_logits", with no Keras mask on them.
    """
    shape = tuple(input_shape)
    if len(shape) != 2 or shape[1] is None or int(shape[1]) < 1 or \
            (shape[0] is not None and int(shape[0]) < 1):
        raise KexpError(f"model=pointer_net reads points of shape (points, coordinates), got "
                        f"input shape {shape}; use data=sort_numbers or data=convex_hull")
    target = tuple(target_shape)
    if len(target) != 1 or (target[0] is not None and int(target[0]) < 1):
        raise KexpError(f"model=pointer_net reads decoder pointer ids of shape (length,), got "
                        f"target shape {target}; use data=sort_numbers or data=convex_hull")
    check_choice("cell", cell, tuple(CELLS))
    width = check_width(width)
    units = scaled(check_positive("units", units), width)
    embedding_dim = scaled(check_positive("embedding_dim", embedding_dim), width)
    attention_units = scaled(check_positive("attention_units", attention_units), width)
    dropout = check_rate("dropout", dropout)
    check_initializer(kernel_initializer)

    def recurrent(name: str, return_state: bool) -> keras.layers.RNN:
        return CELLS[cell](units, return_sequences=True, return_state=return_state,
                           dropout=dropout, kernel_initializer=kernel_initializer,
                           kernel_regularizer=regularizer(l1, l2),
                           recurrent_regularizer=regularizer(l1, l2), name=name)

    points = keras.Input(shape=(shape[0], int(shape[1])), dtype="float32", name=POINTS)
    ids = keras.Input(shape=(target[0],), dtype="int32", name=TARGET)
    # an all-padding row keeps step 0 (cuDNN refuses a fully masked sequence); a decoder
    # input always starts with START, so that never happens in kexp's data
    mask = PaddingMask(keep_first=True, name="target_mask")(ids)

    embedded = layers.Dense(embedding_dim, kernel_initializer=kernel_initializer,
                            kernel_regularizer=regularizer(l1, l2),
                            name="point_embedding")(points)
    encoded, *state = recurrent(f"encoder_{cell}", return_state=True)(embedded)
    inputs = PointerInputs(name="pointer_inputs")([embedded, ids])
    decoded = recurrent(f"decoder_{cell}", return_state=False)(inputs, initial_state=state,
                                                               mask=mask)
    decoded = DropMask(name="drop_mask")(decoded)
    if dropout:
        decoded = layers.Dropout(dropout, name="dropout")(decoded)
    logits = PointerScores(attention_units, kernel_initializer, l1, l2, dtype="float32",
                           name=LOGITS)([decoded, encoded])
    return keras.Model([points, ids], logits, name="pointer_net")
