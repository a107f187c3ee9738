"""Recurrent text classifiers: embedding -> stacked SimpleRNN / LSTM / GRU -> pooling -> classifier.

- LSTM: Hochreiter & Schmidhuber, 1997. GRU: Cho et al., 2014. Bidirectional: Schuster &
  Paliwal, 1997. Dropout on the non-recurrent connections: Zaremba et al., 2014.
- `pooling="attention"`: additive attention pooling over the per-step outputs (the
  Bahdanau et al., 2015 scorer `v^T act(W h_t + b)` used for classification as in Yang et
  al., 2016 and, with a bidirectional LSTM, Zhou et al., 2016).

Data contract: token ids (batch, sequence_length) from a `TextVectorization` layer, id 0
is padding and sequences are padded at the END, so a text ends at its first id 0;
everything from there on is padding and never reaches the output.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from kexp.errors import KexpError
from kexp.models.layers import (
    check_activation,
    check_choice,
    check_initializer,
    regularizer,
    scaled,
)
from kexp.models.sequence import (
    AttentionPooling1D,
    PaddingMask,
    check_positive,
    check_rate,
    check_vocab_size,
    check_width,
    sequence_length,
    token_input,
)

CELLS = {"simple": keras.layers.SimpleRNN, "lstm": keras.layers.LSTM, "gru": keras.layers.GRU}
RNN_POOLINGS = ("last", "attention", "none")


def rnn(input_shape: Sequence[int | None], vocab_size: int,
        cell: str = "lstm", layers: int = 1, units: int = 128, bidirectional: bool = False,
        embedding_dim: int = 128, pooling: str = "last", attention_units: int = 64,
        recurrent_dropout: float = 0.0, activation: str = "tanh", dropout: float = 0.2,
        l1: float = 0.0, l2: float = 0.0, kernel_initializer: str = "glorot_uniform",
        width: float = 1.0) -> keras.Model:
    """Builds a recurrent text backbone.

    token ids -> Embedding -> `layers` x (SimpleRNN | LSTM | GRU, optionally bidirectional)
    -> pooling over time -> dropout -> classifier. Padding steps are masked in every
    recurrent layer (they neither update the state nor appear in the pooling), so the
    output depends only on the text, not on how much padding follows it. An empty text
    (all padding) is read as a single padding token, because the cuDNN kernels Keras uses
    on GPUs reject fully masked sequences.

    Args:
        input_shape: `(sequence_length,)` of the token-id inputs; `(None,)` takes any length.
        vocab_size: number of token ids (0 = padding, 1 = out-of-vocabulary).
        cell: recurrent cell, "simple" (SimpleRNN), "lstm" or "gru".
        layers: number of stacked recurrent layers (all but the top one return sequences).
        units: units of every recurrent layer (per direction when bidirectional).
        bidirectional: wrap every recurrent layer in `keras.layers.Bidirectional`
            (forward and backward outputs concatenated, so 2 * units features). Refused
            with pooling="none": the backward pass would let a step see the tokens after it.
        embedding_dim: size of the token embedding.
        pooling: "last": the top layer's output at the last step of the text (its final
            state; bidirectional: forward final state + backward state at the first token);
            "attention": additive (Bahdanau) attention pooling over the top layer's per-step
            outputs, `softmax_t(v^T act(W h_t + b))`, padding masked out; "none": every
            step's output, (batch, steps, units), no padding mask: what a language model
            reads (task=language_model), each step seeing only the tokens up to it.
        attention_units: width of the attention scorer's hidden Dense layer (`W` above).
        recurrent_dropout: dropout rate on the recurrent state (Gal & Ghahramani, 2016); any
            value above 0 makes Keras leave the fast cuDNN kernels on GPUs.
        activation: hidden activation of the attention scorer (`act` above; tanh in the
            paper). The recurrent cells keep their standard tanh/sigmoid activations, which
            the cuDNN kernels require; unused with `pooling="last"`.
        dropout: dropout rate on the non-recurrent connections: on the inputs of every
            recurrent layer (the embeddings, then the layer below) and on the pooled
            features before the classifier (with pooling="none": on every step's output).
        l1: L1 penalty on every weight matrix: the recurrent layers' input kernels and
            recurrent kernels, the attention scorer and the classifier (not the embedding).
        l2: L2 penalty on the same weight matrices.
        kernel_initializer: initializer of the recurrent layers' input kernels and of the
            dense kernels (the recurrent kernels stay orthogonal, as in Keras).
        width: multiplier on `units`, `embedding_dim` and `attention_units`.

    Returns:
        A `keras.Model` named "rnn", "lstm", "gru", "birnn", "bilstm" or "bigru", whose
        output is one feature vector per example ((batch, steps, units) with pooling="none";
        no head: the task adds its own, kexp.tasks). Its token embedding is a
        `keras.layers.ReversibleEmbedding` named "embedding".
    """
    length = sequence_length(input_shape, "rnn")
    vocab_size = check_vocab_size(vocab_size)
    check_choice("cell", cell, tuple(CELLS))
    check_choice("pooling", pooling, RNN_POOLINGS)
    depth = check_positive("layers", layers)
    width = check_width(width)
    units = scaled(check_positive("units", units), width)
    embedding_dim = scaled(check_positive("embedding_dim", embedding_dim), width)
    attention_units = scaled(check_positive("attention_units", attention_units), width)
    dropout = check_rate("dropout", dropout)
    recurrent_dropout = check_rate("recurrent_dropout", recurrent_dropout)
    check_activation(activation)
    check_initializer(kernel_initializer)

    every_step = pooling == "none"
    if every_step and bidirectional:
        raise KexpError("model.bidirectional: true reads every text backwards too, so with "
                        "model.pooling=none a step would see the tokens after it; set "
                        "model.bidirectional=false")
    kind = "rnn" if cell == "simple" else cell
    ids = token_input(length)
    # an empty text is read as one padding token: cuDNN kernels reject fully masked rows
    mask = None if every_step else PaddingMask(keep_first=True, name="padding_mask")(ids)
    x = keras.layers.ReversibleEmbedding(vocab_size, embedding_dim, name="embedding")(ids)
    for i in range(depth):
        top = i == depth - 1
        layer = CELLS[cell](
            units, return_sequences=not top or pooling != "last", dropout=dropout,
            recurrent_dropout=recurrent_dropout, kernel_initializer=kernel_initializer,
            kernel_regularizer=regularizer(l1, l2), recurrent_regularizer=regularizer(l1, l2),
            name=f"{kind}_{i}")
        if bidirectional:
            layer = keras.layers.Bidirectional(layer, name=f"bi{kind}_{i}")
        x = layer(x, mask=mask)
    if pooling == "attention":
        hidden = keras.layers.Dense(attention_units, activation=activation,
                                    kernel_initializer=kernel_initializer,
                                    kernel_regularizer=regularizer(l1, l2),
                                    name="attention_hidden")(x)
        scores = keras.layers.Dense(1, use_bias=False, kernel_initializer=kernel_initializer,
                                    kernel_regularizer=regularizer(l1, l2),
                                    name="attention_score")(hidden)
        x = AttentionPooling1D(name="attention_pool")([x, scores], mask=mask)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = x  # features: the task puts its head on them (kexp.tasks)
    return keras.Model(ids, outputs, name=f"bi{kind}" if bidirectional else kind)
