"""Transformer encoder text classifier (Vaswani et al., 2017, "Attention Is All You Need").

token + position embedding -> `num_blocks` encoder blocks (multi-head self-attention and a
position-wise feed-forward network, each with a residual connection and layer
normalization) -> pooling over the tokens -> dropout -> classifier. `pooling="cls"`
prepends a learned [CLS] token and classifies its output, as BERT does (Devlin et al.,
2019); `norm_first=True` is the pre-LN variant (Xiong et al., 2020), which trains without
a learning-rate warm-up.

Padding (id 0; a text ends at its first id 0) is masked out of every attention and out of
the pooling, so the output depends only on the text. `pooling="none"` makes it a causal
(decoder-style) stack instead: every attention is causally masked (position t attends to
0..t only) and the output is every position's features, as a language model reads them.
The embedding, blocks and final norm are shared with kexp.models.gpt (`embed_and_encode`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import keras
from keras import layers, ops

from kexp.errors import KexpError
from kexp.models.layers import (
    check_activation,
    check_choice,
    check_initializer,
    regularizer,
)
from kexp.models.sequence import (
    MaskedPooling1D,
    PaddingMask,
    check_positive,
    check_rate,
    check_vocab_size,
    check_width,
    sequence_length,
    token_input,
)

POSITIONAL = ("learned", "sinusoidal")
POOLINGS = ("mean", "max", "cls", "none")


@keras.saving.register_keras_serializable(package="kexp")
class PrependToken(layers.Layer):
    """(batch, steps) ids -> (batch, 1 + steps): the id `token_id` put in front of every row."""

    def __init__(self, token_id: int, **kwargs):
        super().__init__(**kwargs)
        self.token_id = int(token_id)

    def call(self, ids):
        first = ops.full_like(ids[:, :1], self.token_id)
        return ops.concatenate([first, ids], axis=1)

    def compute_output_shape(self, input_shape):
        steps = None if input_shape[1] is None else input_shape[1] + 1
        return (input_shape[0], steps)

    def get_config(self):
        return {**super().get_config(), "token_id": self.token_id}


@keras.saving.register_keras_serializable(package="kexp")
class PositionIds(layers.Layer):
    """(batch, steps) ids -> (batch, steps) int32 positions 0, 1, ..., steps - 1."""

    def call(self, ids):
        positions = ops.arange(ops.shape(ids)[1], dtype="int32")
        return ops.zeros_like(ids, dtype="int32") + positions[None, :]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)


@keras.saving.register_keras_serializable(package="kexp")
class SinusoidalPositionEncoding(layers.Layer):
    """(batch, steps, d) -> the same plus the fixed sinusoidal position table of Vaswani et al.

    Channel i < ceil(d/2) holds sin(p / 10000^(2i/d)), the rest the matching cosines (the
    paper interleaves them; this is the same table up to a fixed order of channels, as in
    tensor2tensor). Any number of steps; no weights.
    """

    def call(self, x):
        steps, dim = ops.shape(x)[1], x.shape[-1]
        half = (dim + 1) // 2
        positions = ops.cast(ops.arange(steps), "float32")[:, None]
        rates = ops.exp(ops.arange(half, dtype="float32") * (-2.0 * math.log(10000.0) / dim))
        angles = positions * rates[None, :]
        table = ops.concatenate([ops.sin(angles), ops.cos(angles)[:, : dim - half]], axis=-1)
        return x + ops.cast(table, x.dtype)[None, :, :]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)


def encoder_block(x, mask, *, num_heads: int, ff_dim: int, norm_first: bool, activation: str,
                  dropout: float, l1: float, l2: float, kernel_initializer: str, name: str,
                  causal: bool = False):
    """Self-attention and feed-forward sublayers, each residual, post- or pre-layer-norm.

    `mask`: (batch, steps) bool, the keys every query may attend to (None: all);
    `causal=True`: position t also attends to positions 0..t only (a decoder block)."""
    dim = x.shape[-1]

    def norm(t, label):
        return layers.LayerNormalization(epsilon=1e-6, name=f"{name}_{label}")(t)

    h = norm(x, "attention_norm") if norm_first else x
    h = layers.MultiHeadAttention(num_heads, key_dim=dim // num_heads, dropout=dropout,
                                  kernel_initializer=kernel_initializer,
                                  kernel_regularizer=regularizer(l1, l2),
                                  name=f"{name}_attention")(h, h, value_mask=mask,
                                                            use_causal_mask=causal)
    if dropout:
        h = layers.Dropout(dropout, name=f"{name}_attention_dropout")(h)
    x = layers.Add(name=f"{name}_attention_add")([x, h])
    if not norm_first:
        x = norm(x, "attention_norm")

    h = norm(x, "ffn_norm") if norm_first else x
    h = layers.Dense(ff_dim, activation=activation, kernel_initializer=kernel_initializer,
                     kernel_regularizer=regularizer(l1, l2), name=f"{name}_ffn_hidden")(h)
    h = layers.Dense(dim, kernel_initializer=kernel_initializer,
                     kernel_regularizer=regularizer(l1, l2), name=f"{name}_ffn_out")(h)
    if dropout:
        h = layers.Dropout(dropout, name=f"{name}_ffn_dropout")(h)
    x = layers.Add(name=f"{name}_ffn_add")([x, h])
    if not norm_first:
        x = norm(x, "ffn_norm")
    return x


def attention_width(embed_dim, num_heads, width) -> int:
    """`embed_dim` times the `width` multiplier, kept a multiple of `num_heads` (one-line
    KexpErrors for knobs out of range, or an `embed_dim` not divisible by `num_heads`)."""
    num_heads = check_positive("num_heads", num_heads)
    embed_dim = check_positive("embed_dim", embed_dim)
    if embed_dim % num_heads:
        raise KexpError(f"model.embed_dim: {embed_dim} is not divisible by model.num_heads="
                        f"{num_heads}; use a multiple of {num_heads} (e.g. "
                        f"{max(num_heads, embed_dim // num_heads * num_heads)})")
    width = check_width(width)
    return num_heads * max(1, round(embed_dim * width / num_heads))


def embed_and_encode(tokens, mask, *, vocab_size: int, steps: int | None, embed_dim: int,
                     positional: str, num_blocks: int, num_heads: int, ff_dim: int,
                     norm_first: bool, causal: bool, activation: str, dropout: float,
                     l1: float, l2: float, kernel_initializer: str):
    """(batch, steps) token ids -> (batch, steps, embed_dim): the token embedding (a
    `ReversibleEmbedding` named "token_embedding", so a language model can tie its head to it),
    the positions, embedding dropout, `num_blocks` blocks (causal ones with `causal=True`,
    attending to the keys `mask` keeps) and, for pre-LN blocks, the final layer norm."""
    x = layers.ReversibleEmbedding(vocab_size, embed_dim, name="token_embedding")(tokens)
    if positional == "learned":
        positions = PositionIds(name="position_ids")(tokens)
        positions = layers.Embedding(steps, embed_dim, name="position_embedding")(positions)
        x = layers.Add(name="add_positions")([x, positions])
    else:
        x = layers.Rescaling(math.sqrt(embed_dim), name="scale_embedding")(x)
        x = SinusoidalPositionEncoding(name="add_positions")(x)
    if dropout:
        x = layers.Dropout(dropout, name="embedding_dropout")(x)
    for i in range(num_blocks):
        x = encoder_block(x, mask, num_heads=num_heads, ff_dim=ff_dim, norm_first=norm_first,
                          activation=activation, dropout=dropout, l1=l1, l2=l2,
                          kernel_initializer=kernel_initializer, name=f"block{i}",
                          causal=causal)
    if norm_first:
        x = layers.LayerNormalization(epsilon=1e-6, name="final_norm")(x)
    return x


def transformer(input_shape: Sequence[int | None], vocab_size: int,
                num_blocks: int = 2, num_heads: int = 4, embed_dim: int = 128,
                ff_dim: int = 256, positional: str = "learned", norm_first: bool = True,
                pooling: str = "mean", activation: str = "gelu", dropout: float = 0.1,
                l1: float = 0.0, l2: float = 0.0, kernel_initializer: str = "glorot_uniform",
                width: float = 1.0) -> keras.Model:
    """Builds a Transformer encoder text backbone (a causal decoder stack with pooling="none").

    Args:
        input_shape: `(sequence_length,)` of the token-id inputs; `(None,)` (any length)
            works with `positional="sinusoidal"` only.
        vocab_size: number of token ids (0 = padding, 1 = out-of-vocabulary).
        num_blocks: number of encoder blocks.
        num_heads: attention heads per block; each head has `embed_dim // num_heads`
            dimensions.
        embed_dim: model width d (token and position embeddings, every block's output);
            must be divisible by `num_heads`.
        ff_dim: hidden width of every block's feed-forward network.
        positional: "learned": an Embedding over the positions 0..sequence_length-1 added
            to the token embeddings (BERT); "sinusoidal": the fixed sin/cos table of the
            paper, added to the token embeddings scaled by sqrt(d) as in the paper.
        norm_first: True: pre-LN blocks, x + f(LN(x)), with a final layer norm after the
            last block; False: post-LN blocks, LN(x + f(x)), as in the paper.
        pooling: "mean": masked mean of the token outputs (padding excluded); "max": masked
            channel-wise maximum; "cls": the output of a learned [CLS] token prepended to
            every sequence (an extra row of the token embedding, id `vocab_size`); "none":
            a causal (decoder-style) stack: every attention is causally masked, so position
            t sees the tokens 0..t only, and the output is every position's features,
            (batch, steps, embed_dim), with no padding mask (what a language model reads,
            task=language_model).
        activation: activation of the feed-forward networks' hidden layer (the paper: relu;
            BERT: gelu).
        dropout: dropout rate on the attention weights, on both sublayers' outputs before
            each residual sum, on the embeddings and on the pooled features (with
            pooling="none": on every position's features).
        l1: L1 penalty on every weight kernel: the attention projections (query, key, value,
            output), the feed-forward layers and the classifier (not the embeddings).
        l2: L2 penalty on the same kernels.
        kernel_initializer: initializer of the same kernels.
        width: multiplier on `embed_dim` (rounded to a multiple of `num_heads`) and `ff_dim`.

    Returns:
        A `keras.Model` named "transformer", whose output is one feature vector per example
        ((batch, steps, embed_dim) with pooling="none"; no head: the task adds its own,
        kexp.tasks). Its token embedding is a `keras.layers.ReversibleEmbedding` named
        "token_embedding".
    """
    length = sequence_length(input_shape, "transformer")
    vocab_size = check_vocab_size(vocab_size)
    check_choice("positional", positional, POSITIONAL)
    check_choice("pooling", pooling, POOLINGS)
    num_blocks = check_positive("num_blocks", num_blocks)
    embed_dim = attention_width(embed_dim, num_heads, width)
    ff_dim = max(1, round(check_positive("ff_dim", ff_dim) * check_width(width)))
    dropout = check_rate("dropout", dropout)
    check_activation(activation)
    check_initializer(kernel_initializer)
    if positional == "learned" and length is None:
        raise KexpError("model.positional: 'learned' needs a fixed sequence length, got input "
                        "shape (None,); use positional=sinusoidal or a fixed data.sequence_length")

    every_position = pooling == "none"
    ids = token_input(length)
    tokens = ids
    if pooling == "cls":
        tokens = PrependToken(vocab_size, name="prepend_cls")(ids)
    steps = None if length is None else length + (pooling == "cls")
    mask = None if every_position else PaddingMask(name="padding_mask")(tokens)
    x = embed_and_encode(tokens, mask, vocab_size=vocab_size + (pooling == "cls"), steps=steps,
                         embed_dim=embed_dim, positional=positional, num_blocks=num_blocks,
                         num_heads=int(num_heads), ff_dim=ff_dim, norm_first=norm_first,
                         causal=every_position, activation=activation, dropout=dropout,
                         l1=l1, l2=l2, kernel_initializer=kernel_initializer)
    if not every_position:
        x = MaskedPooling1D("first" if pooling == "cls" else pooling, name=f"{pooling}_pool")(
            x, mask=mask)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    outputs = x  # features: the task puts its head on them (kexp.tasks)
    return keras.Model(ids, outputs, name="transformer")
