"""kexp.models.rnn: recurrent text classifiers (presets rnn, lstm, gru, bilstm)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from kexp.errors import KexpError
from kexp.models import build, load_model
from kexp.models.rnn import rnn
from kexp.training.precision import precision_policy
from tests.test_models import model_cfg

VOCAB, LENGTH, CLASSES = 200, 24, 3
TINY = {"units": 8, "embedding_dim": 8, "attention_units": 4}



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


def tiny(name: str, length: int | None = LENGTH, **overrides) -> keras.Model:
    return build(model_cfg(name, **{**TINY, **overrides}), (length,), CLASSES, vocab_size=VOCAB)


def predict(model: keras.Model, ids: np.ndarray) -> np.ndarray:
    return keras.ops.convert_to_numpy(model(ids, training=False))


@pytest.mark.parametrize("name", ["rnn", "lstm", "gru", "bilstm"])
def test_presets_give_class_probabilities(name):
    model = tiny(name)
    probs = predict(model, token_ids(5).astype("int64"))  # TextVectorization hands out int64
    assert probs.shape == (5, CLASSES)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert model.name == name


def test_cell_bidirectional_and_layers_pick_the_keras_layers():
    for cell, cls in [("simple", keras.layers.SimpleRNN), ("lstm", keras.layers.LSTM),
                      ("gru", keras.layers.GRU)]:
        model = tiny("rnn", cell=cell, layers=3)
        recurrent = [layer for layer in model.layers if isinstance(layer, keras.layers.RNN)]
        assert [type(layer) for layer in recurrent] == [cls] * 3
        # all but the top layer hand their sequences on
        assert [layer.return_sequences for layer in recurrent] == [True, True, False]
    model = tiny("bilstm", layers=2)
    wrappers = [layer for layer in model.layers if isinstance(layer, keras.layers.Bidirectional)]
    assert len(wrappers) == 2
    assert all(isinstance(w.forward_layer, keras.layers.LSTM) for w in wrappers)
    assert model.get_layer("attention_pool").output.shape == (None, 2 * TINY["units"])


def test_parameter_count_matches_the_lstm_and_attention_formulas():
    e, u, a = 8, 8, 4
    model = tiny("bilstm", layers=2)

    def lstm(inputs):  # 4 gates, each with input kernel, recurrent kernel and bias
        return 4 * (inputs * u + u * u + u)

    expected = (VOCAB * e  # embedding
                + 2 * lstm(e) + 2 * lstm(2 * u)  # two bidirectional layers
                + (2 * u * a + a) + a  # scorer W, b and v
                + 2 * u * CLASSES + CLASSES)  # classifier
    assert model.count_params() == expected
    gru = tiny("gru")  # Keras' GRU (reset_after=True) has two bias vectors per gate
    assert gru.count_params() == VOCAB * e + 3 * (e * u + u * u + 2 * u) + u * CLASSES + CLASSES


@pytest.mark.parametrize(("name", "overrides"), [
    ("lstm", {}), ("gru", {"layers": 2}), ("bilstm", {}), ("rnn", {"pooling": "attention"}),
])
def test_padding_never_reaches_the_output(name, overrides):
    model = tiny(name, **overrides)
    ids = token_ids(6)
    probs = predict(model, ids)

    # anything after the first 0 is padding, whatever its ids
    junk = ids.copy()
    after_end = np.cumsum(ids == 0, axis=1) > 0
    junk[after_end] = 7
    junk[np.arange(6), np.argmax(ids == 0, axis=1)] = 0  # the text still ends with a 0
    np.testing.assert_allclose(predict(model, junk), probs, atol=1e-6)

    # more padding at the end: the same weights on longer sequences
    longer = tiny(name, length=LENGTH + 9, **overrides)
    longer.set_weights(model.get_weights())
    padded = np.pad(ids, ((0, 0), (0, 9)))
    np.testing.assert_allclose(predict(longer, padded), probs, atol=1e-6)

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
    for name in ("lstm", "bilstm"):
        model = tiny(name)
        probs = predict(model, np.zeros((2, LENGTH), dtype="int32"))
        assert np.isfinite(probs).all()
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    # the recurrent layers read an empty text as one padding token (cuDNN on GPUs refuses a
    # fully masked row), and nothing after a text's first 0
    mask = model.get_layer("padding_mask")(np.array([[0, 0, 0], [4, 0, 9], [4, 8, 9]]))
    assert keras.ops.convert_to_numpy(mask).tolist() == [
        [True, False, False], [True, False, False], [True, True, True]]


def test_knobs_reach_the_layers():
    model = tiny("bilstm", l2=1e-3, recurrent_dropout=0.1, dropout=0.3, width=2.0,
                 activation="relu", kernel_initializer="he_uniform")
    lstm = model.get_layer("bilstm_0").forward_layer
    assert lstm.units == 16 and model.get_layer("embedding").output_dim == 16
    assert lstm.cell.recurrent_dropout == 0.1 and lstm.cell.dropout == 0.3
    assert isinstance(lstm.cell.kernel_initializer, keras.initializers.HeUniform)
    hidden = model.get_layer("attention_hidden")
    assert hidden.units == 8 and hidden.activation is keras.activations.relu
    # L2 on the input and recurrent kernels of both directions, the scorer and the classifier
    assert len(model.losses) == 2 * 2 + 2 + 1
    assert len(tiny("bilstm").losses) == 0


@pytest.mark.parametrize("name", ["rnn", "lstm", "gru", "bilstm"])
def test_every_preset_takes_a_training_step(name):
    model = tiny(name)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    history = model.fit(token_ids(16), np.arange(16) % CLASSES, epochs=1, batch_size=8,
                        verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_learns_whether_a_token_appears():
    ids = token_ids(500, seed=1)
    ids[ids == 5] = 6
    label = np.random.default_rng(2).random(500) < 0.5
    lengths = np.argmax(np.pad(ids, ((0, 0), (0, 1))) == 0, axis=1)
    where = (np.random.default_rng(3).random(500) * lengths).astype(int)
    ids[label, where[label]] = 5  # the label: token 5 is somewhere in the text
    model = tiny("gru", pooling="attention", units=16, embedding_dim=16, dropout=0.0)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    model.fit(ids[:400], label[:400].astype(int), epochs=3, batch_size=32, verbose=0)
    accuracy = np.mean(predict(model, ids[400:]).argmax(axis=1) == label[400:])
    assert accuracy > 0.85  # chance is 0.5


def test_save_and_load_give_the_same_predictions(tmp_path):
    model = tiny("bilstm", layers=2)
    ids = token_ids(4)
    model.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(predict(loaded, ids), predict(model, ids), atol=1e-6)


def test_mixed_precision_keeps_a_float32_output():
    with precision_policy("mixed_float16"):
        model = tiny("bilstm")
    assert model.get_layer("embedding").compute_dtype == "float16"
    probs = predict(model, token_ids(3))
    assert probs.dtype == np.float32 and np.isfinite(probs).all()


@pytest.mark.parametrize(("overrides", "words"), [
    ({"cell": "xlstm"}, ["model.cell", "xlstm", "simple, lstm, gru"]),
    ({"pooling": "foo"}, ["model.pooling", "foo", "last, attention"]),
    ({"layers": 0}, ["model.layers", "0"]),
    ({"units": -4}, ["model.units", "-4"]),
    ({"recurrent_dropout": 1.5}, ["model.recurrent_dropout", "1.5", "[0, 1)"]),
    ({"activation": "relu6x"}, ["model.activation", "relu6x"]),
    ({"kernel_initializer": "nope"}, ["model.kernel_initializer", "nope"]),
    ({"width": 0.0}, ["model.width", "0.0"]),
    ({"num_heads": 2}, ["model.num_heads", "cell"]),
])
def test_bad_settings_are_named_in_one_line(overrides, words):
    with pytest.raises(KexpError) as err:
        build(model_cfg("lstm", **overrides), (LENGTH,), CLASSES, vocab_size=VOCAB)
    assert "\n" not in str(err.value)
    for word in words:
        assert word in str(err.value)


def test_images_are_refused():
    with pytest.raises(KexpError, match="text data set"):
        build(model_cfg("lstm"), (28, 28, 1), 10)  # image data: no vocabulary
    with pytest.raises(KexpError, match=r"model=rnn reads token ids .* \(28, 28, 1\)"):
        rnn((28, 28, 1), 10, VOCAB)
