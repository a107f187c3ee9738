"""kexp.models.tcn: the temporal convolutional network text classifier."""

from __future__ import annotations

from functools import partial

import keras
import numpy as np
import pytest

from kexp.models import build
from kexp.models.tcn import receptive_field
from kexp.training.precision import precision_policy
from tests import sequence_checks as checks
from tests.model_checks import one_line_error
from tests.sequence_checks import seeded  # noqa: F401 (an autouse fixture: the same weights)
from tests.test_models import model_cfg

VOCAB, LENGTH, CLASSES = 500, 40, 3
TINY = {"embedding_dim": 8, "filters": 6, "dilations": [1, 2, 4]}
token_ids = partial(checks.token_ids, vocab=VOCAB, length=LENGTH)


def tiny(length: int | None = LENGTH, **overrides) -> keras.Model:
    return build(model_cfg("tcn", **{**TINY, **overrides}), (length,), CLASSES,
                 vocab_size=VOCAB)


@pytest.mark.parametrize("pooling", ["last", "mean", "max"])
def test_gives_class_probabilities(pooling):
    model = tiny(pooling=pooling, batch_norm=True)
    checks.assert_gives_class_probabilities(model, token_ids(5), CLASSES)


def test_receptive_field_is_what_the_last_output_sees():
    assert receptive_field(3, [1, 2, 4, 8, 16, 32]) == 253  # the preset
    assert receptive_field(2, [1, 2, 4, 8]) == 31
    ids = np.random.default_rng(0).integers(2, VOCAB, size=(1, LENGTH))  # no padding
    for dilations in ([1, 2], [1, 2, 4]):
        reach = receptive_field(3, dilations)  # 13, then 29
        model = tiny(dilations=dilations, pooling="last")
        probs = checks.predict(model, ids)
        for position, seen in [(LENGTH - reach, True), (LENGTH - reach - 1, False)]:
            changed = ids.copy()
            changed[0, position] = 2 + (ids[0, position] - 1) % (VOCAB - 2)
            moved = not np.allclose(checks.predict(model, changed), probs, atol=1e-6)
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
    longer = tiny(length=LENGTH + checks.EXTRA_PADDING, pooling=pooling, batch_norm=True)
    checks.assert_padding_never_reaches_the_output(model, longer, token_ids(6), atol=1e-6)


def test_an_empty_text_gives_finite_probabilities():
    for pooling in ("last", "mean", "max"):
        checks.assert_empty_texts_give_finite_probabilities(tiny(pooling=pooling), LENGTH)


def test_trains_and_learns_whether_a_token_appears():
    model = tiny(pooling="max", filters=16, embedding_dim=16)
    checks.assert_learns_whether_a_token_appears(model, vocab=VOCAB, length=LENGTH, epochs=4)


def test_the_preset_takes_a_training_step():
    model = build(model_cfg("tcn", width=0.25), (LENGTH,), CLASSES, vocab_size=VOCAB)
    checks.assert_takes_a_training_step(model, token_ids(16), CLASSES)


def test_save_and_load_give_the_same_predictions(tmp_path):
    checks.assert_save_and_load_agree(tiny(pooling="last", batch_norm=True), token_ids(4),
                                      tmp_path)


def test_mixed_precision_keeps_a_float32_output():
    with precision_policy("mixed_float16"):
        model = tiny(pooling="max")
    checks.assert_float32_output_in_mixed_precision(model, "block0_conv0", token_ids(3))


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
    with one_line_error(*words):
        build(model_cfg("tcn", **overrides), shape, CLASSES, vocab_size=VOCAB)
