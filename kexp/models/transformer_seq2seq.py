"""Transformer encoder-decoder for translation (Vaswani et al., 2017, "Attention Is All You
Need"); `norm_first=True` is the pre-LN variant (Xiong et al., 2020), which trains without a
learning-rate warm-up.

source ids -> token + position embedding -> `num_layers` encoder blocks (self-attention,
feed-forward); decoder input ids (the target behind a start token: teacher forcing) ->
token + position embedding -> `num_layers` decoder blocks (causal self-attention,
cross-attention to the encoder's output, feed-forward), each sublayer residual with layer
normalization -> the vocabulary logits. The encoder blocks are kexp.models.transformer's.

The padding (id 0 at the end) is masked explicitly, with masks computed from the ids: every
encoder self-attention and every cross-attention reads the source's text only (padded source
keys get zero weight, so the source's padding never reaches the logits), and every decoder
self-attention is causal (position t attends to 0..t) and skips padded target keys, so the
logits at target position t depend on the decoder input ids 0..t and the source.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import keras
from keras import layers

from kexp.errors import KexpError
from kexp.models.encoder_decoder import (
    check_vocabularies,
    encoder_decoder,
    inputs,
    lengths,
    logits,
    padding_masks,
)
from kexp.models.layers import check_activation, check_choice, check_initializer, regularizer
from kexp.models.sequence import check_positive, check_rate, check_width
from kexp.models.transformer import (
    POSITIONAL,
    PositionIds,
    SinusoidalPositionEncoding,
    attention_width,
    encoder_block,
)


def embed(ids, table: layers.Embedding, *, steps: int | None, embed_dim: int, positional: str,
          dropout: float, name: str):
    """(batch, steps) ids -> (batch, steps, embed_dim): the token `table` plus the positions
    (learned: an Embedding over 0..steps-1 named "<name>_position_embedding"; sinusoidal: the
    paper's table, the tokens scaled by sqrt(embed_dim)), then dropout."""
    x = table(ids)
    if positional == "learned":
        positions = PositionIds(name=f"{name}_position_ids")(ids)
        positions = layers.Embedding(steps, embed_dim, name=f"{name}_position_embedding")(
            positions)
        x = layers.Add(name=f"{name}_add_positions")([x, positions])
    else:
        x = layers.Rescaling(math.sqrt(embed_dim), name=f"{name}_scale_embedding")(x)
        x = SinusoidalPositionEncoding(name=f"{name}_add_positions")(x)
    if dropout:
        x = layers.Dropout(dropout, name=f"{name}_embedding_dropout")(x)
    return x


def decoder_block(x, encoded, target_mask, source_mask, *, num_heads: int, ff_dim: int,
                  norm_first: bool, activation: str, dropout: float, l1: float, l2: float,
                  kernel_initializer: str, name: str):
    """Causal self-attention, cross-attention to `encoded` and feed-forward sublayers, each
    residual, post- or pre-layer-norm.

    `target_mask`, `source_mask`: (batch, steps) bool, the keys each attention may read. Only
    keys are masked (no query mask): a query row with every key masked would read them all,
    future and padding included."""
    dim = x.shape[-1]

    def norm(t, label):
        return layers.LayerNormalization(epsilon=1e-6, name=f"{name}_{label}")(t)

    def attention(label):
        return layers.MultiHeadAttention(num_heads, key_dim=dim // num_heads, dropout=dropout,
                                         kernel_initializer=kernel_initializer,
                                         kernel_regularizer=regularizer(l1, l2),
                                         name=f"{name}_{label}")

    def residual(x, h, label):
        if dropout:
            h = layers.Dropout(dropout, name=f"{name}_{label}_dropout")(h)
        x = layers.Add(name=f"{name}_{label}_add")([x, h])
        return x if norm_first else norm(x, f"{label}_norm")

    h = norm(x, "self_attention_norm") if norm_first else x
    h = attention("self_attention")(h, h, value_mask=target_mask, use_causal_mask=True)
    x = residual(x, h, "self_attention")

    h = norm(x, "cross_attention_norm") if norm_first else x
    h = attention("cross_attention")(h, encoded, encoded, value_mask=source_mask)
    x = residual(x, h, "cross_attention")

    h = norm(x, "ffn_norm") if norm_first else x
    h = layers.Dense(ff_dim, activation=activation, kernel_initializer=kernel_initializer,
                     kernel_regularizer=regularizer(l1, l2), name=f"{name}_ffn_hidden")(h)
    h = layers.Dense(dim, kernel_initializer=kernel_initializer,
                     kernel_regularizer=regularizer(l1, l2), name=f"{name}_ffn_out")(h)
    return residual(x, h, "ffn")


@encoder_decoder
def transformer_seq2seq(input_shape: Sequence[int | None], vocab_size: int,
                        target_shape: Sequence[int | None], target_vocab_size: int,
                        num_layers: int = 3, num_heads: int = 4, embed_dim: int = 128,
                        ff_dim: int = 512, dropout: float = 0.1,
                        positional: str = "sinusoidal", shared_embeddings: bool = False,
                        norm_first: bool = True, activation: str = "relu", l1: float = 0.0,
                        l2: float = 0.0, kernel_initializer: str = "glorot_uniform",
                        width: float = 1.0) -> keras.Model:
    """Builds a Transformer encoder-decoder.

    Args:
        input_shape: `(source_length,)` of the source ids; `(None,)` (any length) works with
            `positional="sinusoidal"` only.
        vocab_size: number of source token ids (0 = padding, 1 = out-of-vocabulary).
        target_shape: `(target_length,)` of the decoder input ids; `(None,)` as above.
        target_vocab_size: number of target token ids, the width of the logits.
        num_layers: number of encoder blocks, and of decoder blocks.
        num_heads: attention heads of every attention; each head has
            `embed_dim // num_heads` dimensions.
        embed_dim: model width d (embeddings, every block's output); must be divisible by
            `num_heads`.
        ff_dim: hidden width of every block's feed-forward network.
        dropout: dropout rate on the attention weights, on every sublayer's output before its
            residual sum and on the embeddings (the paper: 0.1).
        positional: "sinusoidal": the fixed sin/cos table of the paper, added to the token
            embeddings scaled by sqrt(d); "learned": an Embedding over the positions
            0..length-1 (one for the source, one for the target) added to them.
        shared_embeddings: True: one token embedding for the source and the target ids (a
            joint vocabulary, as in the paper); needs `vocab_size == target_vocab_size`.
            False: one table each. The logits have their own Dense either way.
        norm_first: True: pre-LN blocks, x + f(LN(x)), with a final layer norm after the last
            encoder block and after the last decoder block; False: post-LN blocks,
            LN(x + f(x)), as in the paper.
        activation: activation of the feed-forward networks' hidden layer (the paper: relu).
        l1: L1 penalty on every weight kernel: the attention projections (query, key, value,
            output), the feed-forward layers and the logits (not the embeddings).
        l2: L2 penalty on the same kernels.
        kernel_initializer: initializer of the same kernels.
        width: multiplier on `embed_dim` (rounded to a multiple of `num_heads`) and `ff_dim`.

    Returns:
        A `keras.Model` named "transformer_seq2seq" from [source ids (batch, source_length),
        decoder input ids (batch, target_length)] (int32 inputs named "source_ids" and
        "target_ids") to float32 logits (batch, target_length, target_vocab_size) from a
        Dense named "logits", with no Keras mask on them.
    """
    source_length, target_length = lengths(input_shape, target_shape, "transformer_seq2seq")
    vocab_size, target_vocab_size = check_vocabularies(vocab_size, target_vocab_size)
    check_choice("positional", positional, POSITIONAL)
    num_layers = check_positive("num_layers", num_layers)
    embed_dim = attention_width(embed_dim, num_heads, width)
    ff_dim = max(1, round(check_positive("ff_dim", ff_dim) * check_width(width)))
    dropout = check_rate("dropout", dropout)
    check_activation(activation)
    check_initializer(kernel_initializer)
    if positional == "learned" and (source_length is None or target_length is None):
        raise KexpError("model.positional: 'learned' needs fixed source and target lengths, "
                        "got a length of None; use positional=sinusoidal")
    if shared_embeddings and vocab_size != target_vocab_size:
        raise KexpError(f"model.shared_embeddings: true needs one vocabulary for source and "
                        f"target, got vocab_size={vocab_size} and target_vocab_size="
                        f"{target_vocab_size}; set model.shared_embeddings=false")

    source, target = inputs(source_length, target_length)
    source_mask, target_mask = padding_masks(source, target)
    if shared_embeddings:
        source_table = target_table = layers.Embedding(vocab_size, embed_dim,
                                                       name="shared_embedding")
    else:
        source_table = layers.Embedding(vocab_size, embed_dim, name="source_embedding")
        target_table = layers.Embedding(target_vocab_size, embed_dim, name="target_embedding")
    settings = {"num_heads": int(num_heads), "ff_dim": ff_dim, "norm_first": norm_first,
                "activation": activation, "dropout": dropout, "l1": l1, "l2": l2,
                "kernel_initializer": kernel_initializer}

    x = embed(source, source_table, steps=source_length, embed_dim=embed_dim,
              positional=positional, dropout=dropout, name="source")
    for i in range(num_layers):
        x = encoder_block(x, source_mask, name=f"encoder{i}", **settings)
    if norm_first:
        x = layers.LayerNormalization(epsilon=1e-6, name="encoder_final_norm")(x)
    encoded = x

    y = embed(target, target_table, steps=target_length, embed_dim=embed_dim,
              positional=positional, dropout=dropout, name="target")
    for i in range(num_layers):
        y = decoder_block(y, encoded, target_mask, source_mask, name=f"decoder{i}", **settings)
    if norm_first:
        y = layers.LayerNormalization(epsilon=1e-6, name="decoder_final_norm")(y)
    outputs = logits(y, target_vocab_size, l1=l1, l2=l2, kernel_initializer=kernel_initializer)
    return keras.Model([source, target], outputs, name="transformer_seq2seq")
