"""kexp.models.rnn: recurrent text classifiers (presets rnn, lstm, gru, bilstm)."""

from __future__ import annotations

from functools import partial

import keras
import numpy as np
import pytest

from kexp.errors import KexpError
from kexp.models import build
from kexp.models.rnn import rnn
from kexp.training.precision import precision_policy
from tests import sequence_checks as checks
from tests.model_checks import one_line_error
from tests.sequence_checks import seeded  # noqa: F401 (an autouse fixture: the same weights)
from tests.test_models import model_cfg

VOCAB, LENGTH, CLASSES = 200, 24, 3
TINY = {"units": 8, "embedding_dim": 8, "attention_units": 4}
token_ids = partial(checks.token_ids, vocab=VOCAB, length=LENGTH)


def tiny(name: str, length: int | None = LENGTH, **overrides) -> keras.Model:
    return build(model_cfg(name, **{**TINY, **overrides}), (length,), CLASSES, vocab_size=VOCAB)


@pytest.mark.parametrize("name", ["rnn", "lstm", "gru", "bilstm"])
def test_presets_give_class_probabilities(name):
    model = tiny(name)
    checks.assert_gives_class_probabilities(model, token_ids(5), CLASSES)
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
    longer = tiny(name, length=LENGTH + checks.EXTRA_PADDING, **overrides)
    checks.assert_padding_never_reaches_the_output(model, longer, token_ids(6), atol=1e-6)


def test_an_empty_text_gives_finite_probabilities():
    for name in ("lstm", "bilstm"):
        model = tiny(name)
        checks.assert_empty_texts_give_finite_probabilities(model, LENGTH)
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
    checks.assert_takes_a_training_step(tiny(name), token_ids(16), CLASSES)


def test_learns_whether_a_token_appears():
    model = tiny("gru", pooling="attention", units=16, embedding_dim=16, dropout=0.0)
    checks.assert_learns_whether_a_token_appears(model, vocab=VOCAB, length=LENGTH, epochs=3)


def test_save_and_load_give_the_same_predictions(tmp_path):
    checks.assert_save_and_load_agree(tiny("bilstm", layers=2), token_ids(4), tmp_path)


def test_mixed_precision_keeps_a_float32_output():
    with precision_policy("mixed_float16"):
        model = tiny("bilstm")
    checks.assert_float32_output_in_mixed_precision(model, "embedding", token_ids(3))


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
    with one_line_error(*words):
        build(model_cfg("lstm", **overrides), (LENGTH,), CLASSES, vocab_size=VOCAB)


def test_images_are_refused():
    with pytest.raises(KexpError, match="text data set"):
        build(model_cfg("lstm"), (28, 28, 1), 10)  # image data: no vocabulary
    with pytest.raises(KexpError, match=r"model=rnn reads token ids .* \(28, 28, 1\)"):
        rnn((28, 28, 1), 10, VOCAB)
