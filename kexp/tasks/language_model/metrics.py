"""The numbers a language model is judged by, all from the same next-token cross-entropy:
nats per token, bits per token (bits per character for data.tokens=char, per word for
word) and perplexity. Each is Keras' weighted mean of the cross-entropy, so the weights of
the validation and test windows (every target token of a split counted once) hold.

The cross-entropy is computed once a step: `compiled()` gives bits per token and perplexity
the nats metric as their `source`, and they only rescale its result (a per-step
log-softmax over the vocabulary each cost 9-18% of lstm_lm's training speed,
docs/benchmarks.md). A model loaded from a file gets them without a source; they then
compute the cross-entropy themselves, with the same result.
"""

from __future__ import annotations

import math

import keras
from keras import ops


class _FromNats(keras.metrics.SparseCategoricalCrossentropy):
    """A function of the mean next-token cross-entropy in nats, read from `source` when one
    is given (its state is then never updated here) or accumulated from logits."""

    def __init__(self, name: str, dtype: str | None = None,
                 source: keras.metrics.SparseCategoricalCrossentropy | None = None) -> None:
        super().__init__(name=name, dtype=dtype, from_logits=True)
        self.source = source

    def update_state(self, y_true, y_pred, sample_weight=None):
        if self.source is None:
            return super().update_state(y_true, y_pred, sample_weight=sample_weight)
        return None

    def nats(self):
        return (self.source if self.source is not None else super()).result()

    def get_config(self) -> dict:
        return {"name": self.name, "dtype": self.dtype}


@keras.saving.register_keras_serializable(package="kexp")
class BitsPerToken(_FromNats):
    """Mean next-token cross-entropy in bits (nats / ln 2), from logits."""

    def __init__(self, name: str = "bits_per_token", dtype: str | None = None,
                 source: keras.metrics.SparseCategoricalCrossentropy | None = None,
                 **kwargs) -> None:
        super().__init__(name=name, dtype=dtype, source=source)

    def result(self):
        return self.nats() / math.log(2.0)


@keras.saving.register_keras_serializable(package="kexp")
class Perplexity(_FromNats):
    """exp(mean next-token cross-entropy in nats), from logits."""

    def __init__(self, name: str = "perplexity", dtype: str | None = None,
                 source: keras.metrics.SparseCategoricalCrossentropy | None = None,
                 **kwargs) -> None:
        super().__init__(name=name, dtype=dtype, source=source)

    def result(self):
        return ops.exp(self.nats())


def compiled() -> list[keras.metrics.Metric]:
    """The metrics task=language_model compiles, in LanguageModel.METRICS order; one
    cross-entropy a step serves the last three."""
    nats = keras.metrics.SparseCategoricalCrossentropy(name="nats_per_token", from_logits=True)
    return [keras.metrics.SparseCategoricalAccuracy(name="accuracy"), nats,
            BitsPerToken(source=nats), Perplexity(source=nats)]
