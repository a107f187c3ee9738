"""Parameter-free glue every kexp sequence family (rnn, transformer, tcn) shares.

Data contract: token ids (batch, sequence_length) from a `TextVectorization` layer, id 0
is padding and sequences are padded at the END, so a text ends at its first id 0;
everything from there on is padding and never reaches the output. `PaddingMask` turns the
ids into that mask; the pooling layers honour it; the checks give one-line errors.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops

from kexp.errors import KexpError

# --- checks shared by the sequence families ---------------------------------------------------


def check_positive(key: str, value) -> int:
    """`value` as an int if it is a whole number >= 1, else a one-line KexpError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise KexpError(f"model.{key}: {value!r} is not valid; expected an integer >= 1")
    return int(value)


def check_rate(key: str, value) -> float:
    """`value` as a float if it is a rate in [0, 1), else a one-line KexpError."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
        raise KexpError(f"model.{key}: {value!r} is not valid; expected a number in [0, 1)")
    return float(value)


def check_width(width) -> float:
    if isinstance(width, bool) or not isinstance(width, int | float) or width <= 0:
        raise KexpError(f"model.width: {width!r} is not valid; expected a positive number")
    return float(width)


def sequence_length(input_shape: Sequence[int | None], family: str) -> int | None:
    """The sequence length of token-id inputs of shape `(sequence_length,)` (None: any)."""
    shape = tuple(input_shape)
    if len(shape) == 2:  # documents split into sentences (data.sentences): model=han reads them
        raise KexpError(f"model={family} reads token ids of shape (sequence_length,), got "
                        f"documents of sentences {shape}; set data.sentences=null, or use "
                        f"model=han")
    if len(shape) != 1 or (shape[0] is not None and int(shape[0]) < 1):
        raise KexpError(f"model={family} reads token ids of shape (sequence_length,), got input "
                        f"shape {shape}; use a text data set")
    return None if shape[0] is None else int(shape[0])


def check_vocab_size(vocab_size) -> int:
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 2:
        raise KexpError(f"vocab_size: {vocab_size!r} is not valid; a vocabulary holds at least "
                        f"the padding id 0 and the OOV id 1")
    return int(vocab_size)


def token_input(length: int | None) -> keras.KerasTensor:
    return keras.Input(shape=(length,), dtype="int32", name="token_ids")


def token_embedding(model: keras.Model) -> keras.layers.ReversibleEmbedding | None:
    """The text backbone's token table: its one `keras.layers.ReversibleEmbedding` (rnn and
    tcn name it "embedding", transformer and gpt "token_embedding"), which a language model
    can tie its vocabulary head to; None when it has none or more than one."""
    tables = [layer for layer in model.layers
              if isinstance(layer, keras.layers.ReversibleEmbedding)]
    return tables[0] if len(tables) == 1 else None


# --- parameter-free glue layers ---------------------------------------------------------------


@keras.saving.register_keras_serializable(package="kexp")
class PaddingMask(keras.layers.Layer):
    """(batch, steps) token ids -> (batch, steps) bool, True for the steps of the text.

    A text ends at its first id 0 (sequences are padded at the end), so a step is True
    when no id 0 comes at or before it. `keep_first=True` also keeps step 0 of an empty
    text (all padding): cuDNN's recurrent kernels refuse a fully masked sequence.
    """

    def __init__(self, keep_first: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.keep_first = bool(keep_first)

    def call(self, ids):
        ended = ops.cumsum(ops.cast(ops.equal(ids, 0), "int32"), axis=1)
        if self.keep_first:
            ended = ops.concatenate([ops.zeros_like(ended[:, :1]), ended[:, 1:]], axis=1)
        return ops.equal(ended, 0)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "keep_first": self.keep_first}


POOLINGS = ("mean", "max", "last", "first")


@keras.saving.register_keras_serializable(package="kexp")
class MaskedPooling1D(keras.layers.Layer):
    """(batch, steps, channels) -> (batch, channels) over the unmasked steps only.

    mode: "mean" (average of the text's steps), "max" (channel-wise maximum over them),
    "last" (the last unmasked step), "first" (step 0, e.g. a [CLS] token). A text with no
    unmasked step (an empty text) pools to zeros rather than NaN.
    """

    def __init__(self, mode: str = "mean", **kwargs):
        super().__init__(**kwargs)
        if mode not in POOLINGS:
            raise ValueError(f"MaskedPooling1D mode must be one of {POOLINGS}, got {mode!r}")
        self.mode = mode
        self.supports_masking = True  # consumes the mask; the pooled output carries none

    def call(self, x, mask=None):
        if self.mode == "first":
            return x[:, 0, :]
        if mask is None:
            mask = ops.ones(ops.shape(x)[:2], dtype="bool")
        mask = ops.cast(mask, "bool")
        weights = ops.cast(mask, x.dtype)
        if self.mode == "mean":
            total = ops.sum(x * weights[:, :, None], axis=1)
            count = ops.maximum(ops.sum(weights, axis=1, keepdims=True), 1.0)
            return total / count
        if self.mode == "max":
            # masked steps take the row's own minimum, which can never win the maximum
            floor = ops.min(x, axis=1, keepdims=True)
            best = ops.max(ops.where(mask[:, :, None], x, floor), axis=1)
            return ops.where(ops.any(mask, axis=1)[:, None], best, ops.zeros_like(best))
        # "last": one-hot of the last unmasked step; an empty text gives index -1 -> all zeros
        steps = ops.shape(x)[1]
        positions = ops.where(mask, ops.arange(steps)[None, :], -1)
        pick = ops.one_hot(ops.max(positions, axis=1), steps, dtype=x.dtype)
        return ops.einsum("bt,btc->bc", pick, x)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


@keras.saving.register_keras_serializable(package="kexp")
class AttentionPooling1D(keras.layers.Layer):
    """[values (batch, steps, c), scores (batch, steps, 1)] -> (batch, c).

    Softmax of the scores over the unmasked steps (in float32), then the weighted sum of
    the values. The scores come from standard Dense layers; this layer has no weights.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        values, scores = inputs
        scores = ops.cast(ops.squeeze(scores, axis=-1), "float32")
        if isinstance(mask, list | tuple):
            mask = mask[0]
        if mask is None:
            mask = ops.ones(ops.shape(scores), dtype="bool")
        mask = ops.cast(mask, "bool")
        weights = ops.softmax(ops.where(mask, scores, -1e9), axis=-1)
        weights = weights * ops.cast(mask, "float32")  # an empty text attends to nothing
        return ops.einsum("bt,btc->bc", ops.cast(weights, values.dtype), values)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        values_shape = input_shape[0]
        return (values_shape[0], values_shape[2])
