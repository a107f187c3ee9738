"""task=language_model's metrics share one cross-entropy a step: bits per token and perplexity
must equal what Keras' own SparseCategoricalCrossentropy gives for the same weighted batches,
inside a fit and after the metrics are saved and loaded without their source."""

from __future__ import annotations

import math

import numpy as np


def batches(seed: int = 0):
    rng = np.random.default_rng(seed)
    for _ in range(3):
        yield (rng.integers(0, 7, (4, 5)), rng.normal(size=(4, 5, 7)).astype("float32"),
               rng.integers(0, 2, (4, 5)).astype("float32"))


def reference_nats() -> float:
    import keras

    reference = keras.metrics.SparseCategoricalCrossentropy(from_logits=True)
    for y, logits, weight in batches():
        reference.update_state(y, logits, sample_weight=weight)
    return float(reference.result())


def test_bits_and_perplexity_read_the_one_weighted_cross_entropy():
    from kexp.tasks.language_model.metrics import compiled

    accuracy, nats, bits, perplexity = compiled()
    for y, logits, weight in batches():
        for metric in (accuracy, nats, bits, perplexity):
            metric.update_state(y, logits, sample_weight=weight)
    expected = reference_nats()
    assert math.isclose(float(nats.result()), expected, rel_tol=1e-6)
    assert math.isclose(float(bits.result()), expected / math.log(2), rel_tol=1e-6)
    assert math.isclose(float(perplexity.result()), math.exp(expected), rel_tol=1e-6)
    for metric in (nats, bits, perplexity):
        metric.reset_state()
    assert float(bits.result()) == 0.0 and float(perplexity.result()) == 1.0


def test_loaded_without_their_source_they_compute_it_themselves():
    import keras

    from kexp.tasks.language_model.metrics import compiled

    _, _, bits, perplexity = compiled()
    loaded = [keras.metrics.deserialize(keras.metrics.serialize(m)) for m in (bits, perplexity)]
    assert all(m.source is None for m in loaded)
    for y, logits, weight in batches():
        for metric in loaded:
            metric.update_state(y, logits, sample_weight=weight)
    expected = reference_nats()
    assert math.isclose(float(loaded[0].result()), expected / math.log(2), rel_tol=1e-6)
    assert math.isclose(float(loaded[1].result()), math.exp(expected), rel_tol=1e-6)


def test_in_a_fit_the_epoch_logs_keep_their_relations():
    import keras

    from kexp.tasks.language_model.metrics import compiled

    rng = np.random.default_rng(1)
    x = rng.integers(0, 7, (64, 5))
    y = np.roll(x, -1, axis=1)
    model = keras.Sequential([keras.Input((5,), dtype="int32"), keras.layers.Embedding(7, 8),
                              keras.layers.Dense(7)])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  weighted_metrics=compiled())
    logs = model.fit(x, y, batch_size=16, epochs=2, verbose=0).history
    for nats, bits, perplexity in zip(logs["nats_per_token"], logs["bits_per_token"],
                                      logs["perplexity"], strict=True):
        assert math.isclose(bits, nats / math.log(2), rel_tol=1e-5)
        assert math.isclose(perplexity, math.exp(nats), rel_tol=1e-5)
    assert logs["nats_per_token"][1] < logs["nats_per_token"][0]
