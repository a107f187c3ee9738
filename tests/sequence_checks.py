"""Checks that every text classifier on token ids (rnn, transformer, tcn) must pass.

Not a test module itself: each family's test file builds its own tiny models and calls these
with them; what only one family does stays in that family's file. A test module that imports
`seeded` gets it as an autouse fixture.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import pytest

from kexp.models import load_model
from tests.model_checks import assert_class_probabilities

EXTRA_PADDING = 9  # how many more 0s the longer model of the padding check reads


@pytest.fixture(autouse=True)
def seeded():
    keras.utils.set_random_seed(0)  # the same weights on every run


def token_ids(n: int, *, vocab: int, length: int, seed: int = 0) -> np.ndarray:
    """Random texts of 1..length-4 tokens (ids 2..vocab-1), padded with 0 at the end."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(2, vocab, size=(n, length))
    ends = rng.integers(1, length - 4, size=n)
    ids[np.arange(length)[None, :] >= ends[:, None]] = 0
    return ids


def predict(model: keras.Model, ids: np.ndarray) -> np.ndarray:
    return keras.ops.convert_to_numpy(model(ids, training=False))


def assert_gives_class_probabilities(model: keras.Model, ids: np.ndarray, classes: int) -> None:
    probs = predict(model, ids.astype("int64"))  # TextVectorization hands out int64
    assert_class_probabilities(probs, len(ids), classes)


def assert_empty_texts_give_finite_probabilities(model: keras.Model, length: int) -> None:
    probs = predict(model, np.zeros((2, length), dtype="int32"))
    assert np.isfinite(probs).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def copy_weights(model: keras.Model, longer: keras.Model) -> None:
    longer.set_weights(model.get_weights())


def assert_padding_never_reaches_the_output(
        model: keras.Model, longer: keras.Model, ids: np.ndarray, *, atol: float,
        table: str = "embedding",
        move_weights: Callable[[keras.Model, keras.Model], None] = copy_weights) -> None:
    """`longer` is `model` built for EXTRA_PADDING more tokens (or any length); `move_weights`
    gives it `model`'s weights; `table` is the token embedding layer."""
    probs = predict(model, ids)

    # anything after the first 0 is padding, whatever its ids
    junk = ids.copy()
    junk[np.cumsum(ids == 0, axis=1) > 0] = 7
    junk[np.arange(len(ids)), np.argmax(ids == 0, axis=1)] = 0  # the text still ends with a 0
    np.testing.assert_allclose(predict(model, junk), probs, atol=atol)

    # more padding at the end: the same weights on longer sequences
    move_weights(model, longer)
    padded = np.pad(ids, ((0, 0), (0, EXTRA_PADDING)))
    np.testing.assert_allclose(predict(longer, padded), probs, atol=atol)

    # the embedding of the padding id plays no part; that of a token of the text does
    embedding = model.get_layer(table)
    weights = keras.ops.convert_to_numpy(embedding.embeddings)
    weights[0] = 100.0
    embedding.embeddings.assign(weights)
    np.testing.assert_allclose(predict(model, ids), probs, atol=atol)
    weights[ids[0, 0]] = 100.0
    embedding.embeddings.assign(weights)
    assert not np.allclose(predict(model, ids)[0], probs[0], atol=1e-4)


def token_appears_task(*, vocab: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """500 texts and their labels: whether token 5 is somewhere in the text (half of them)."""
    ids = token_ids(500, vocab=vocab, length=length, seed=1)
    ids[ids == 5] = 6
    label = np.random.default_rng(2).random(500) < 0.5
    lengths = np.argmax(np.pad(ids, ((0, 0), (0, 1))) == 0, axis=1)
    where = (np.random.default_rng(3).random(500) * lengths).astype(int)
    ids[label, where[label]] = 5  # the label: token 5 is somewhere in the text
    return ids, label


def assert_learns_whether_a_token_appears(model: keras.Model, *, vocab: int, length: int,
                                          epochs: int) -> None:
    """Trained on 400 texts of token_appears_task, right on more than 85% of the other 100."""
    ids, label = token_appears_task(vocab=vocab, length=length)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    model.fit(ids[:400], label[:400].astype(int), epochs=epochs, batch_size=32, verbose=0)
    accuracy = np.mean(predict(model, ids[400:]).argmax(axis=1) == label[400:])
    assert accuracy > 0.85  # chance is 0.5


def assert_takes_a_training_step(model: keras.Model, ids: np.ndarray, classes: int) -> None:
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    history = model.fit(ids, np.arange(len(ids)) % classes, epochs=1, batch_size=8, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def assert_save_and_load_agree(model: keras.Model, ids: np.ndarray, folder: Path) -> None:
    model.save(folder / "m.keras")
    loaded = load_model(folder / "m.keras")
    np.testing.assert_allclose(predict(loaded, ids), predict(model, ids), atol=1e-6)


def assert_float32_output_in_mixed_precision(model: keras.Model, float16_layer: str,
                                             ids: np.ndarray) -> None:
    """`model` built under mixed_float16: `float16_layer` computes in float16, the output is
    float32 and finite."""
    assert model.get_layer(float16_layer).compute_dtype == "float16"
    probs = predict(model, ids)
    assert probs.dtype == np.float32 and np.isfinite(probs).all()
