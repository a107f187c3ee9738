"""kexp.models.tcn: the temporal convolutional network text classifier."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from kexp.errors import KexpError
from kexp.models import build, load_model
from kexp.models.tcn import receptive_field
from kexp.training.precision import precision_policy
from tests.test_models import model_cfg

VOCAB, LENGTH, CLASSES = 500, 40, 3
TINY = {"embedding_dim": 8, "filters": 6, "dilations": [1, 2, 4]}



@pytest.fixture(autouse=True)
def seeded():
    keras.utils.set_random_seed(0)  # the same weights on every run

def token_ids(n: int, length: int = LENGTH, seed: int = 0) -> np.ndarray:
    """Random texts of 1..length-4 tokens (ids 2..VOCAB-1), padded with 0 at the end."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(2, VOCAB, size=(n, length))
    ends = rng.integers(1, length - 4, size=n)
    ids[np.arange(length)[None, :] >= ends[:, None]] = 0
    return ids


def tiny(length: int | None = LENGTH, **overrides) -> keras.Model:
    return build(model_cfg("tcn", **{**TINY, **overrides}), (length,), CLASSES,
                 vocab_size=VOCAB)


def predict(model: keras.Model, ids: np.ndarray) -> np.ndarray:
    return keras.ops.convert_to_numpy(model(ids, training=False))


@pytest.mark.parametrize("pooling", ["last", "mean", "max"])
def test_gives_class_probabilities(pooling):
    model = tiny(pooling=pooling, batch_norm=True)
    probs = predict(model, token_ids(5).astype("int64"))  # TextVectorization hands out int64
    assert probs.shape == (5, CLASSES)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_receptive_field_is_what_the_last_output_sees():
    assert receptive_field(3, [1, 2, 4, 8, 16, 32]) == 253  # the preset
    assert receptive_field(2, [1, 2, 4, 8]) == 31
    ids = np.random.default_rng(0).integers(2, VOCAB, size=(1, LENGTH))  # no padding
    for dilations in ([1, 2], [1, 2, 4]):
        reach = receptive_field(3, dilations)  # 13, then 29
        model = tiny(dilations=dilations, pooling="last")
        probs = predict(model, ids)
        for position, seen in [(LENGTH - reach, True), (LENGTH - reach - 1, False)]:
            changed = ids.copy()
            changed[0, position] = 2 + (ids[0, position] - 1) % (VOCAB - 2)
            moved = not np.allclose(predict(model, changed), probs, atol=1e-6)
            assert moved == seen, (dilations, position)


def test_parameter_count_matches_the_block_formula():
    e, f, k, blocks = 8, 6, 3, 3
    first = (k * e * f + f) + (k * f * f + f) + (e * f + f)  # two convs and the 1x1 skip
    later = 2 * (k * f * f + f)
    expected = VOCAB * e + first + (blocks - 1) * later + f * CLASSES + CLASSES
    assert tiny().count_params() == expected
    # no 1x1 conv on the skip when the embedding already has `filters` channels
    same = tiny(embedding_dim=6)
    assert not any(layer.name.endswith("_skip") for layer in same.layers)
    assert same.count_params() == VOCAB * f + blocks * later + f * CLASSES + CLASSES


def test_knobs_reach_the_layers():
    model = tiny(batch_norm=True, l2=1e-3, dropout=0.25, kernel_size=5, width=2.0,
                 activation="gelu", kernel_initializer="glorot_normal")
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv1D)]
    dilated = [c for c in convs if not c.name.endswith("_skip")]
    assert [c.dilation_rate[0] for c in dilated] == [1, 1, 2, 2, 4, 4]
    assert all(c.filters == 12 and c.kernel_size == (5,) and c.padding == "causal"
               for c in dilated)
    assert all(not c.use_bias for c in dilated)  # batch norm follows
    assert sum(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers) == 6
    assert isinstance(dilated[0].kernel_initializer, keras.initializers.GlorotNormal)
    assert {layer.rate for layer in model.layers if isinstance(layer, keras.layers.Dropout)} \
        == {0.25}
    assert model.get_layer("block0_act0").activation is keras.activations.gelu
    assert len(model.losses) == len(convs) + 1  # every conv kernel and the classifier
    assert len(convs) == 7  # 2 per block and the skip of the first block
    assert len(tiny().losses) == 0


@pytest.mark.parametrize("pooling", ["last", "mean", "max"])
def test_padding_never_reaches_the_output(pooling):
    model = tiny(pooling=pooling, batch_norm=True)
    ids = token_ids(6)
    probs = predict(model, ids)

    # anything after the first 0 is padding, whatever its ids
    junk = ids.copy()
    junk[np.cumsum(ids == 0, axis=1) > 0] = 7
    junk[np.arange(6), np.argmax(ids == 0, axis=1)] = 0  # the text still ends with a 0
    np.testing.assert_allclose(predict(model, junk), probs, atol=1e-6)

    # more padding at the end: the same weights on longer sequences
    longer = tiny(length=LENGTH + 9, pooling=pooling, batch_norm=True)
    longer.set_weights(model.get_weights())
    np.testing.assert_allclose(predict(longer, np.pad(ids, ((0, 0), (0, 9)))), probs, atol=1e-6)

    # the embedding of the padding id plays no part; that of a token of the text does
    table = model.get_layer("embedding")
    weights = keras.ops.convert_to_numpy(table.embeddings)
    weights[0] = 100.0
    table.embeddings.assign(weights)
    np.testing.assert_allclose(predict(model, ids), probs, atol=1e-6)
    weights[ids[0, 0]] = 100.0
    table.embeddings.assign(weights)
    assert not np.allclose(predict(model, ids)[0], probs[0], atol=1e-4)


def test_an_empty_text_gives_finite_probabilities():
    for pooling in ("last", "mean", "max"):
        probs = predict(tiny(pooling=pooling), np.zeros((2, LENGTH), dtype="int32"))
        assert np.isfinite(probs).all()
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_trains_and_learns_whether_a_token_appears():
    ids = token_ids(500, seed=1)
    ids[ids == 5] = 6
    label = np.random.default_rng(2).random(500) < 0.5
    lengths = np.argmax(np.pad(ids, ((0, 0), (0, 1))) == 0, axis=1)
    where = (np.random.default_rng(3).random(500) * lengths).astype(int)
    ids[label, where[label]] = 5  # the label: token 5 is somewhere in the text
    model = tiny(pooling="max", filters=16, embedding_dim=16)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    model.fit(ids[:400], label[:400].astype(int), epochs=4, batch_size=32, verbose=0)
    accuracy = np.mean(predict(model, ids[400:]).argmax(axis=1) == label[400:])
    assert accuracy > 0.85  # chance is 0.5


def test_the_preset_takes_a_training_step():
    model = build(model_cfg("tcn", width=0.25), (LENGTH,), CLASSES, vocab_size=VOCAB)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    history = model.fit(token_ids(16), np.arange(16) % CLASSES, epochs=1, batch_size=8,
                        verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_save_and_load_give_the_same_predictions(tmp_path):
    model = tiny(pooling="last", batch_norm=True)
    ids = token_ids(4)
    model.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(predict(loaded, ids), predict(model, ids), atol=1e-6)


def test_mixed_precision_keeps_a_float32_output():
    with precision_policy("mixed_float16"):
        model = tiny(pooling="max")
    assert model.get_layer("block0_conv0").compute_dtype == "float16"
    probs = predict(model, token_ids(3))
    assert probs.dtype == np.float32 and np.isfinite(probs).all()


@pytest.mark.parametrize(("overrides", "shape", "words"), [
    ({"pooling": "foo"}, (LENGTH,), ["model.pooling", "foo", "last, mean, max"]),
    ({"dilations": []}, (LENGTH,), ["model.dilations", "[]", "[1, 2, 4, 8]"]),
    ({"dilations": [1, 0]}, (LENGTH,), ["model.dilations", "0"]),
    ({"kernel_size": 1}, (LENGTH,), ["model.kernel_size", "1", ">= 2"]),
    ({"filters": 0}, (LENGTH,), ["model.filters", "0"]),
    ({"activation": "relu6x"}, (LENGTH,), ["model.activation", "relu6x"]),
    ({}, (28, 28, 1), ["model=tcn", "(sequence_length,)", "(28, 28, 1)"]),
])
def test_bad_settings_are_named_in_one_line(overrides, shape, words):
    with pytest.raises(KexpError) as err:
        build(model_cfg("tcn", **overrides), shape, CLASSES, vocab_size=VOCAB)
    assert "\n" not in str(err.value)
    for word in words:
        assert word in str(err.value)
