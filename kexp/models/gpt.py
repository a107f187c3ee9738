"""Decoder-only Transformer, GPT (Radford et al., 2018, "Improving Language Understanding by
Generative Pre-Training"; 2019, "Language Models are Unsupervised Multitask Learners"), laid
out as nanoGPT (Karpathy, 2022) lays it out.

token embedding + learned position embedding -> dropout -> `num_layers` pre-norm blocks, each
x + dropout(causal self-attention(LN(x))) then x + dropout(MLP(LN(x))) -> a final layer norm.
Every attention is causally masked, so the features at position t depend only on the tokens
0..t: `pooling="none"` hands every position's features to a language model
(task=language_model, which can tie its vocabulary head to the token embedding, a
`keras.layers.ReversibleEmbedding` named "token_embedding"); "last" / "mean" pool over the text for
text classification.

The blocks, embeddings and final norm are kexp.models.transformer's (`embed_and_encode`
with `causal=True`, `norm_first=True`, learned positions).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

from kexp.errors import KexpError
from kexp.models.layers import check_activation, check_choice, check_initializer
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
from kexp.models.transformer import attention_width, embed_and_encode

POOLINGS = ("none", "last", "mean")


def gpt(input_shape: Sequence[int | None], vocab_size: int,
        num_layers: int = 6, num_heads: int = 6, embed_dim: int = 384,
        ff_dim: int | None = None, dropout: float = 0.2, pooling: str = "none",
        activation: str = "gelu", l1: float = 0.0, l2: float = 0.0,
        kernel_initializer: str = "glorot_uniform", width: float = 1.0) -> keras.Model:
    """Builds a GPT (decoder-only Transformer) text backbone.

    The defaults are nanoGPT's character-level Shakespeare model (6 layers, 6 heads, 384
    wide, dropout 0.2, 4x MLP, gelu).

    Args:
        input_shape: `(context,)`, the number of token ids a sequence holds; the position
            embedding learns one vector per position, so `(None,)` is refused.
        vocab_size: number of token ids (0 = padding, 1 = out-of-vocabulary).
        num_layers: number of Transformer blocks.
        num_heads: attention heads per block; each has `embed_dim // num_heads` dimensions.
        embed_dim: model width d (token and position embeddings, every block's output);
            must be divisible by `num_heads`.
        ff_dim: hidden width of every block's MLP; None: 4 * embed_dim, as in GPT.
        dropout: dropout rate on the embeddings, on the attention weights and on both
            sublayers' outputs before each residual sum (and on the pooled features with
            pooling "last" or "mean").
        pooling: "none": every position's features, (batch, context, embed_dim), each seeing
            the tokens up to it only (language models); "last": the features at the text's
            last token; "mean": their mean over the text's tokens (text classification: ids
            padded with 0 at the end, the padding left out of the pooling; the causal mask
            already keeps it from every position of the text).
        activation: activation of the MLPs' hidden layer (GPT: gelu).
        l1: L1 penalty on every weight kernel: the attention projections (query, key, value,
            output) and both MLP layers (not the embeddings).
        l2: L2 penalty on the same kernels.
        kernel_initializer: initializer of the same kernels.
        width: multiplier on `embed_dim` (rounded to a multiple of `num_heads`) and on a
            given `ff_dim`.

    Returns:
        A `keras.Model` named "gpt" whose output is (batch, context, embed_dim) with
        pooling="none", else (batch, embed_dim); no head: the task adds its own
        (kexp.tasks). Its token embedding is a `keras.layers.ReversibleEmbedding` named
        "token_embedding".
    """
    length = sequence_length(input_shape, "gpt")
    if length is None:
        raise KexpError("model=gpt learns one position embedding per position, so it needs a "
                        "fixed context, got input shape (None,); set data.context (language "
                        "models) or data.sequence_length (text classification)")
    vocab_size = check_vocab_size(vocab_size)
    check_choice("pooling", pooling, POOLINGS)
    num_layers = check_positive("num_layers", num_layers)
    embed_dim = attention_width(embed_dim, num_heads, width)
    if ff_dim is None:
        ff_dim = 4 * embed_dim
    else:
        ff_dim = max(1, round(check_positive("ff_dim", ff_dim) * check_width(width)))
    dropout = check_rate("dropout", dropout)
    check_activation(activation)
    check_initializer(kernel_initializer)

    ids = token_input(length)
    x = embed_and_encode(ids, None, vocab_size=vocab_size, steps=length, embed_dim=embed_dim,
                         positional="learned", num_blocks=num_layers, num_heads=int(num_heads),
                         ff_dim=ff_dim, norm_first=True, causal=True, activation=activation,
                         dropout=dropout, l1=l1, l2=l2, kernel_initializer=kernel_initializer)
    if pooling != "none":
        mask = PaddingMask(name="padding_mask")(ids)
        x = MaskedPooling1D(pooling, name=f"{pooling}_pool")(x, mask=mask)
        if dropout:
            x = layers.Dropout(dropout, name="dropout")(x)
    outputs = x  # features: the task puts its head on them (kexp.tasks)
    return keras.Model(ids, outputs, name="gpt")
