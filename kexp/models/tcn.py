"""Temporal convolutional network text classifier (Bai, Kolter & Koltun, 2018, "An Empirical
Evaluation of Generic Convolutional and Recurrent Networks for Sequence Modeling").

token ids -> Embedding -> one residual block per dilation, each two dilated causal Conv1D
(-> batch norm) -> activation -> dropout, plus the block's input (through a 1x1 conv when
the channel count changes), then the activation -> pooling over the text -> classifier.

Receptive field: block i holds two causal convs of kernel size k and dilation d_i, each
reaching (k - 1) * d_i steps further back, so the output at step t sees the steps
t - R + 1 .. t with

    R = 1 + 2 * (k - 1) * sum(dilations)

(k = 3 and dilations 1, 2, 4, 8, 16, 32 see R = 253 tokens; `receptive_field` computes it).
Every conv is causal, so the outputs at the steps of a text never see the padding after it;
the pooling takes only the text's steps, which makes the output independent of the padding.
With `pooling="none"` the output is every step's features, each seeing only the tokens up to
it: what a language model reads (task=language_model).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

from kexp.errors import KexpError
from kexp.models.layers import (
    check_activation,
    check_choice,
    check_initializer,
    regularizer,
    scaled,
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

POOLINGS = ("last", "mean", "max", "none")


def receptive_field(kernel_size: int, dilations: Sequence[int]) -> int:
    """Steps one output of the TCN sees: 1 + 2 * (kernel_size - 1) * sum(dilations)."""
    return 1 + 2 * (int(kernel_size) - 1) * sum(int(d) for d in dilations)


def residual_block(x, *, filters: int, kernel_size: int, dilation: int, activation: str,
                   dropout: float, batch_norm: bool, l1: float, l2: float,
                   kernel_initializer: str, name: str):
    """Two dilated causal convs and a residual connection (a 1x1 conv when channels change)."""
    skip = x
    for j in range(2):
        x = layers.Conv1D(filters, kernel_size, padding="causal", dilation_rate=dilation,
                          use_bias=not batch_norm, kernel_initializer=kernel_initializer,
                          kernel_regularizer=regularizer(l1, l2), name=f"{name}_conv{j}")(x)
        if batch_norm:
            x = layers.BatchNormalization(name=f"{name}_bn{j}")(x)
        x = layers.Activation(activation, name=f"{name}_act{j}")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"{name}_dropout{j}")(x)
    if skip.shape[-1] != filters:
        skip = layers.Conv1D(filters, 1, kernel_initializer=kernel_initializer,
                             kernel_regularizer=regularizer(l1, l2), name=f"{name}_skip")(skip)
    x = layers.Add(name=f"{name}_add")([skip, x])
    return layers.Activation(activation, name=f"{name}_out")(x)


def tcn(input_shape: Sequence[int | None], vocab_size: int,
        embedding_dim: int = 128, filters: int = 128, kernel_size: int = 3,
        dilations: Sequence[int] = (1, 2, 4, 8, 16, 32), pooling: str = "last",
        activation: str = "relu", dropout: float = 0.1, batch_norm: bool = False,
        l1: float = 0.0, l2: float = 0.0, kernel_initializer: str = "he_normal",
        width: float = 1.0) -> keras.Model:
    """Builds a TCN text backbone.

    Receptive field R = 1 + 2 * (kernel_size - 1) * sum(dilations) tokens: with
    `pooling="last"` the class is read from the output at the text's last token, which sees
    the last R tokens of the text; "mean" and "max" pool over every step of the text, each
    of which sees the R tokens up to it.

    Args:
        input_shape: `(sequence_length,)` of the token-id inputs; `(None,)` takes any length.
        vocab_size: number of token ids (0 = padding, 1 = out-of-vocabulary).
        embedding_dim: size of the token embedding.
        filters: channels of every conv (the paper keeps one width for all blocks).
        kernel_size: kernel size of every dilated conv (at least 2).
        dilations: one residual block per entry, with that dilation (the paper doubles it
            each block: 1, 2, 4, ...).
        pooling: "last": the output at the text's last token (the paper's classifier reads
            the last step; with end padding that is the last non-padding step); "mean" /
            "max": masked mean / maximum over the text's steps; "none": every step's
            features, (batch, steps, filters), no padding mask (the convs are causal, so
            step t sees the tokens up to t only: what a language model reads).
        activation: activation after every conv and after every residual sum (paper: relu).
        dropout: dropout rate after every conv's activation (the paper's dropout) and on
            the pooled features (with pooling="none": on every step's features).
        batch_norm: batch normalization after every dilated conv (the paper uses weight
            normalization, which Keras does not ship as a standard layer). Its batch
            statistics cover every step, padding included (a mask-aware batch norm would
            hand a mask on to the convs, which cannot take one); the moving statistics used
            for inference keep the output independent of the padding.
        l1: L1 penalty on every conv kernel (dilated and 1x1) and the classifier's kernel.
        l2: L2 penalty on the same kernels.
        kernel_initializer: initializer of every conv kernel.
        width: multiplier on `filters` and `embedding_dim`.

    Returns:
        A `keras.Model` named "tcn", whose output is one feature vector per example
        ((batch, steps, filters) with pooling="none"; no head: the task adds its own,
        kexp.tasks). Its token embedding is a `keras.layers.ReversibleEmbedding` named
        "embedding".
    """
    length = sequence_length(input_shape, "tcn")
    vocab_size = check_vocab_size(vocab_size)
    check_choice("pooling", pooling, POOLINGS)
    width = check_width(width)
    embedding_dim = scaled(check_positive("embedding_dim", embedding_dim), width)
    filters = scaled(check_positive("filters", filters), width)
    kernel_size = check_positive("kernel_size", kernel_size)
    if kernel_size < 2:
        raise KexpError(f"model.kernel_size: {kernel_size} is not valid; a dilated conv needs "
                        f"a kernel size >= 2")
    if isinstance(dilations, int | str) or not len(dilations):
        raise KexpError(f"model.dilations: {dilations!r} is not valid; expected a non-empty "
                        f"list of integers >= 1, e.g. [1, 2, 4, 8]")
    dilations = [check_positive("dilations", d) for d in dilations]
    dropout = check_rate("dropout", dropout)
    check_activation(activation)
    check_initializer(kernel_initializer)

    ids = token_input(length)
    every_step = pooling == "none"
    mask = None if every_step else PaddingMask(name="padding_mask")(ids)
    x = layers.ReversibleEmbedding(vocab_size, embedding_dim, name="embedding")(ids)
    for i, dilation in enumerate(dilations):
        x = residual_block(x, filters=filters, kernel_size=kernel_size,
                           dilation=dilation, activation=activation, dropout=dropout,
                           batch_norm=batch_norm, l1=l1, l2=l2,
                           kernel_initializer=kernel_initializer, name=f"block{i}")
    if not every_step:
        x = MaskedPooling1D(pooling, name=f"{pooling}_pool")(x, mask=mask)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    outputs = x  # features: the task puts its head on them (kexp.tasks)
    return keras.Model(ids, outputs, name="tcn")
