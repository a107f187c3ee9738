"""The numbers a language model is judged by, all from the same next-token cross-entropy:
nats per token, bits per token (bits per character for data.tokens=char, per word for
word) and perplexity. Each is Keras' weighted mean of the cross-entropy, so the weights of
the validation and test windows (every target token of a split counted once) hold."""

from __future__ import annotations

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kexp")
class BitsPerToken(keras.metrics.SparseCategoricalCrossentropy):
    """Mean next-token cross-entropy in bits (nats / ln 2), from logits."""

    def __init__(self, name: str = "bits_per_token", dtype: str | None = None, **kwargs) -> None:
        super().__init__(name=name, dtype=dtype, from_logits=True)

    def result(self):
        return super().result() / math.log(2.0)


@keras.saving.register_keras_serializable(package="kexp")
class Perplexity(keras.metrics.SparseCategoricalCrossentropy):
    """exp(mean next-token cross-entropy in nats), from logits."""

    def __init__(self, name: str = "perplexity", dtype: str | None = None, **kwargs) -> None:
        super().__init__(name=name, dtype=dtype, from_logits=True)

    def result(self):
        return ops.exp(super().result())


def compiled() -> list[keras.metrics.Metric]:
    """The metrics task=language_model compiles, in LanguageModel.METRICS order."""
    return [keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
            keras.metrics.SparseCategoricalCrossentropy(name="nats_per_token", from_logits=True),
            BitsPerToken(), Perplexity()]
