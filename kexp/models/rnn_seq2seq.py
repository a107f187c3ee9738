"""Recurrent encoder-decoder with attention, for translation (sequence to sequence).

- Encoder-decoder RNNs: Sutskever et al., 2014; Cho et al., 2014 (GRU). LSTM: Hochreiter &
  Schmidhuber, 1997. Bidirectional encoder: Schuster & Paliwal, 1997, as in Bahdanau et al.
- Attention: additive (Bahdanau et al., 2015) or multiplicative, "dot" and "general" (Luong
  et al., 2015), laid out as the TensorFlow "NMT with attention" tutorial lays it out: the
  decoder's outputs query the encoder's outputs, and concat(context, decoder output) ->
  Dense(tanh) (Luong's attentional hidden state) -> the vocabulary logits.

source ids -> Embedding -> `layers` x (GRU | LSTM, optionally bidirectional), every step's
output kept; decoder input ids (the target behind a start token: teacher forcing) ->
Embedding -> `layers` x (GRU | LSTM), layer i starting from encoder layer i's final state.
The padding (id 0 at the end) is masked explicitly: both masks are computed from the ids and
handed to every recurrent layer and to the attention (Keras passes a mask on its own only to
a layer called on one tensor, so an attention layer would otherwise get none), so padded
source steps get zero attention weight and the source's padding never reaches the logits.
The decoder runs forward only: the logits at target position t depend on the decoder input
ids 0..t and the source.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from kexp.models.encoder_decoder import (
    check_vocabularies,
    encoder_decoder,
    inputs,
    lengths,
    logits,
    padding_masks,
)
from kexp.models.layers import check_choice, check_initializer, regularizer, scaled
from kexp.models.sequence import check_positive, check_rate, check_width

CELLS = {"gru": keras.layers.GRU, "lstm": keras.layers.LSTM}
ATTENTIONS = ("none", "bahdanau", "luong_dot", "luong_general")


@encoder_decoder
def rnn_seq2seq(input_shape: Sequence[int | None], vocab_size: int,
                target_shape: Sequence[int | None], target_vocab_size: int,
                cell: str = "gru", layers: int = 1, units: int = 256,
                bidirectional: bool = False, embedding_dim: int = 128,
                attention: str = "bahdanau", dropout: float = 0.1, l1: float = 0.0,
                l2: float = 0.0, kernel_initializer: str = "glorot_uniform",
                width: float = 1.0) -> keras.Model:
    """Builds a recurrent encoder-decoder with attention.

    Args:
        input_shape: `(source_length,)` of the source ids; `(None,)` takes any length.
        vocab_size: number of source token ids (0 = padding, 1 = out-of-vocabulary).
        target_shape: `(target_length,)` of the decoder input ids; `(None,)`: any length.
        target_vocab_size: number of target token ids, the width of the logits.
        cell: recurrent cell of the encoder and the decoder, "gru" or "lstm".
        layers: number of stacked recurrent layers in the encoder and in the decoder; decoder
            layer i starts from the final state of encoder layer i.
        units: units of every encoder layer (per direction when bidirectional) and of the
            attentional hidden layer; the decoder layers have the encoder's output width.
        bidirectional: wrap every encoder layer in `keras.layers.Bidirectional` (forward and
            backward outputs concatenated, 2 * units features). The decoder then has
            2 * units units and starts from the concatenation of the forward and backward
            final states (no projection), so its outputs and the encoder's have one width.
            The decoder itself always runs forward only.
        embedding_dim: size of the source and target token embeddings (two tables).
        attention: how the decoder outputs (queries) read the encoder outputs (keys and
            values), padded source steps masked out: "bahdanau": additive, score
            v^T tanh(W1 q + W2 k) (two Dense projections to `units`, no bias, and
            `keras.layers.AdditiveAttention`, whose learned scale is v); "luong_dot": q . k
            (`keras.layers.Attention`); "luong_general": q W k (a Dense without bias on the
            query, then the dot product). The context and the decoder output are concatenated
            -> Dense(units, tanh) -> logits. "none": the logits read the decoder outputs
            directly (the encoder reaches the decoder through its final states only).
        dropout: dropout rate on the inputs of every recurrent layer (the embeddings, then
            the layer below) and on the features the logits read.
        l1: L1 penalty on every weight matrix: the recurrent layers' input kernels and
            recurrent kernels, the attention projections, the attentional hidden layer and
            the logits (not the embeddings).
        l2: L2 penalty on the same weight matrices.
        kernel_initializer: initializer of the recurrent layers' input kernels and of the
            dense kernels (the recurrent kernels stay orthogonal, as in Keras).
        width: multiplier on `units` and `embedding_dim`.

    Returns:
        A `keras.Model` named "rnn_seq2seq" from [source ids (batch, source_length), decoder
        input ids (batch, target_length)] (int32 inputs named "source_ids" and "target_ids")
        to float32 logits (batch, target_length, target_vocab_size) from a Dense named
        "logits", with no Keras mask on them.
    """
    source_length, target_length = lengths(input_shape, target_shape, "rnn_seq2seq")
    vocab_size, target_vocab_size = check_vocabularies(vocab_size, target_vocab_size)
    check_choice("cell", cell, tuple(CELLS))
    check_choice("attention", attention, ATTENTIONS)
    depth = check_positive("layers", layers)
    width = check_width(width)
    units = scaled(check_positive("units", units), width)
    embedding_dim = scaled(check_positive("embedding_dim", embedding_dim), width)
    dropout = check_rate("dropout", dropout)
    check_initializer(kernel_initializer)

    def recurrent(n: int, name: str, return_state: bool) -> keras.layers.RNN:
        return CELLS[cell](n, return_sequences=True, return_state=return_state,
                           dropout=dropout, kernel_initializer=kernel_initializer,
                           kernel_regularizer=regularizer(l1, l2),
                           recurrent_regularizer=regularizer(l1, l2), name=name)

    def dense(n: int, name: str, **kwargs) -> keras.layers.Dense:
        return keras.layers.Dense(n, kernel_initializer=kernel_initializer,
                            kernel_regularizer=regularizer(l1, l2), name=name, **kwargs)

    source, target = inputs(source_length, target_length)
    source_mask, target_mask = padding_masks(source, target)

    # encoder: every step's output (the attention's keys and values) and each layer's final state
    x = keras.layers.Embedding(vocab_size, embedding_dim, name="source_embedding")(source)
    final_states = []
    for i in range(depth):
        layer = recurrent(units, f"encoder_{cell}_{i}", return_state=True)
        if bidirectional:
            layer = keras.layers.Bidirectional(layer, name=f"encoder_bi{cell}_{i}")
        x, *states = layer(x, mask=source_mask)
        if bidirectional:  # [forward h (, c), backward h (, c)] -> [h_f|h_b (, c_f|c_b)]
            half = len(states) // 2
            states = [keras.layers.Concatenate(name=f"encoder_state_{i}_{j}")(
                [states[j], states[half + j]]) for j in range(half)]
        final_states.append(states)
    encoded = x

    # decoder: forward only, layer i from encoder layer i's final state
    decoder_units = 2 * units if bidirectional else units
    y = keras.layers.Embedding(target_vocab_size, embedding_dim, name="target_embedding")(target)
    for i in range(depth):
        y = recurrent(decoder_units, f"decoder_{cell}_{i}", return_state=False)(
            y, initial_state=final_states[i], mask=target_mask)

    if attention != "none":
        # the masks by hand: padded source steps get zero weight (a multi-input layer gets
        # no Keras mask of its own); padded target steps get a zero context
        masks = [target_mask, source_mask]
        if attention == "bahdanau":
            query = dense(units, "attention_query", use_bias=False)(y)
            key = dense(units, "attention_key", use_bias=False)(encoded)
            context = keras.layers.AdditiveAttention(name="attention")([query, encoded, key],
                                                                 mask=masks)
        else:
            query = y
            if attention == "luong_general":
                query = dense(encoded.shape[-1], "attention_query", use_bias=False)(y)
            context = keras.layers.Attention(name="attention")([query, encoded], mask=masks)
        y = keras.layers.Concatenate(name="context_and_output")([context, y])
        y = dense(units, "attention_vector", activation="tanh")(y)
    if dropout:
        y = keras.layers.Dropout(dropout, name="dropout")(y)
    outputs = logits(y, target_vocab_size, l1=l1, l2=l2, kernel_initializer=kernel_initializer)
    return keras.Model([source, target], outputs, name="rnn_seq2seq")
