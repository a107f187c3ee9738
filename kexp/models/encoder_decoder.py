"""What the encoder-decoder families (rnn_seq2seq, transformer_seq2seq) share: the marker
`task=seq2seq` looks for, the two inputs, the padding masks and the float32 logits.

An encoder-decoder builder takes `input_shape` = (source_length,), `vocab_size` (the source
vocabulary), `target_shape` = (target_length,) and `target_vocab_size`, and returns one
`keras.Model` from [source ids (B, Ls), decoder input ids (B, Lt)] to float32 logits
(B, Lt, target_vocab_size). Ids are padded with 0 at the END, so a sequence ends at its first
id 0; the decoder input is the target behind a start token (teacher forcing). The logits at
target position t depend only on the decoder input ids 0..t and on the source's text: the
source padding never reaches them. They carry no Keras mask: the task weights its loss by the
target padding itself (kexp.tasks.seq2seq).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras
from keras import layers, ops

from kexp.errors import KexpError
from kexp.models.layers import regularizer
from kexp.models.sequence import PaddingMask, check_vocab_size, sequence_length

SOURCE = "source_ids"  # name of the source input, (batch, source_length) int32
TARGET = "target_ids"  # name of the decoder input, (batch, target_length) int32
LOGITS = "logits"  # name of the output layer, (batch, target_length, target_vocab_size) float32


def encoder_decoder(builder: Callable[..., keras.Model]) -> Callable[..., keras.Model]:
    """Marks an encoder-decoder builder: `task=seq2seq` accepts only these, and the other
    tasks refuse them (their model reads two sequences, not one)."""
    builder.encoder_decoder = True
    return builder


def is_encoder_decoder(builder: Any) -> bool:
    return bool(getattr(builder, "encoder_decoder", False))


def lengths(input_shape: Sequence[int | None], target_shape: Sequence[int | None],
            family: str) -> tuple[int | None, int | None]:
    """(source_length, target_length) from `(source_length,)` and `(target_length,)`; None
    for either: any length. A shape of another rank is a one-line KexpError."""
    source_length = sequence_length(input_shape, family)
    shape = tuple(target_shape)
    if len(shape) != 1 or (shape[0] is not None and int(shape[0]) < 1):
        raise KexpError(f"model={family} writes target ids of shape (target_length,), got "
                        f"target shape {shape}; use a data set of sentence pairs "
                        f"(data=parallel_text)")
    return source_length, None if shape[0] is None else int(shape[0])


def check_vocabularies(vocab_size, target_vocab_size) -> tuple[int, int]:
    """Both vocabulary sizes as ints (each holds at least padding and OOV), else a KexpError."""
    if isinstance(target_vocab_size, bool) or not isinstance(target_vocab_size, int) \
            or target_vocab_size < 2:
        raise KexpError(f"target_vocab_size: {target_vocab_size!r} is not valid; a vocabulary "
                        f"holds at least the padding id 0 and the OOV id 1")
    return check_vocab_size(vocab_size), int(target_vocab_size)


def inputs(source_length: int | None, target_length: int | None
           ) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    """The source ids and the decoder input ids, int32, named SOURCE and TARGET."""
    return (keras.Input(shape=(source_length,), dtype="int32", name=SOURCE),
            keras.Input(shape=(target_length,), dtype="int32", name=TARGET))


def padding_masks(source: keras.KerasTensor, target: keras.KerasTensor):
    """(batch, steps) bool masks, True on the text: "source_mask" and "target_mask".

    An all-padding row keeps its step 0 (`PaddingMask(keep_first=True)`): cuDNN's recurrent
    kernels refuse a fully masked sequence, and an attention then has one key to read rather
    than none. A decoder input always holds its start token at step 0, so that is only ever
    an empty source."""
    return (PaddingMask(keep_first=True, name="source_mask")(source),
            PaddingMask(keep_first=True, name="target_mask")(target))


@keras.saving.register_keras_serializable(package="kexp")
class DropMask(layers.Layer):
    """The identity that ends a Keras mask: what follows it carries none.

    Keras hands a mask that reaches a model's output to its loss and metrics, which would
    then count the positions it keeps on top of the task's own sample weights."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, x, mask=None):
        return ops.copy(x)  # a new tensor: `x` itself carries the mask along

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)


def logits(x, target_vocab_size: int, *, l1: float, l2: float, kernel_initializer: str):
    """(batch, target_length, d) -> (batch, target_length, target_vocab_size) float32 logits
    from a Dense named LOGITS (float32 even under mixed precision), no Keras mask on them."""
    x = DropMask(name="drop_mask")(x)
    return layers.Dense(target_vocab_size, dtype="float32", kernel_initializer=kernel_initializer,
                        kernel_regularizer=regularizer(l1, l2), name=LOGITS)(x)
