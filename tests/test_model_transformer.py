"""kexp.models.transformer: the Transformer encoder text classifier."""

from __future__ import annotations

from functools import partial

import keras
import numpy as np
import pytest

from kexp.models import build
from kexp.training.precision import precision_policy
from tests import sequence_checks as checks
from tests.model_checks import one_line_error
from tests.sequence_checks import seeded  # noqa: F401 (an autouse fixture: the same weights)
from tests.test_models import model_cfg

VOCAB, LENGTH, CLASSES = 300, 32, 4
TINY = {"num_blocks": 2, "num_heads": 2, "embed_dim": 8, "ff_dim": 16}
token_ids = partial(checks.token_ids, vocab=VOCAB, length=LENGTH)


def tiny(length: int | None = LENGTH, **overrides) -> keras.Model:
    return build(model_cfg("transformer", **{**TINY, **overrides}), (length,), CLASSES,
                 vocab_size=VOCAB)


@pytest.mark.parametrize("pooling", ["mean", "max", "cls"])
@pytest.mark.parametrize("positional", ["learned", "sinusoidal"])
def test_gives_class_probabilities(pooling, positional):
    model = tiny(pooling=pooling, positional=positional)
    checks.assert_gives_class_probabilities(model, token_ids(5), CLASSES)


def test_parameter_count_matches_the_encoder_formula():
    d, f, blocks = 8, 16, 2
    attention = 4 * (d * d + d)  # query, key, value and output projections with biases
    ffn = (d * f + f) + (f * d + d)
    norms = 2 * 2 * d  # two layer norms (scale and offset) per block
    head = d * CLASSES + CLASSES
    post_ln = VOCAB * d + LENGTH * d + blocks * (attention + ffn + norms) + head
    assert tiny(norm_first=False).count_params() == post_ln
    assert tiny(norm_first=True).count_params() == post_ln + 2 * d  # the final layer norm
    # a [CLS] token: one more row of the token embedding and one more position
    assert tiny(norm_first=False, pooling="cls").count_params() == post_ln + 2 * d
    # the sinusoidal table has no weights: the learned one has sequence_length x d of them
    sinusoidal = tiny(norm_first=False, positional="sinusoidal")
    assert sinusoidal.count_params() == post_ln - LENGTH * d
    assert not sinusoidal.non_trainable_weights


def test_knobs_reach_the_layers():
    model = tiny(num_blocks=3, num_heads=4, embed_dim=16, ff_dim=24, l2=1e-3, dropout=0.2,
                 activation="relu", kernel_initializer="he_normal", width=2.0)
    attention = [layer for layer in model.layers
                 if isinstance(layer, keras.layers.MultiHeadAttention)]
    assert len(attention) == 3
    assert all(a.num_heads == 4 and a.key_dim == 8 for a in attention)  # width 2: d = 32
    assert all(a.dropout == 0.2 for a in attention)
    hidden = model.get_layer("block0_ffn_hidden")
    assert hidden.units == 48 and hidden.activation is keras.activations.relu
    assert isinstance(hidden.kernel_initializer, keras.initializers.HeNormal)
    # L2 on q, k, v, output and both feed-forward kernels of every block, and the classifier
    assert len(model.losses) == 3 * 6 + 1
    assert len(tiny().losses) == 0
    # width keeps the model width a multiple of the heads
    odd = tiny(num_heads=4, embed_dim=16, width=0.3)
    assert odd.get_layer("token_embedding").output_dim == 4


def move_weights(model: keras.Model, longer: keras.Model) -> None:
    """`model`'s weights into `longer`: learned positions past the old length keep weights
    of their own, which must not matter either."""
    for old, new in zip(model.layers, longer.layers, strict=True):
        weights = old.get_weights()
        if old.name == "position_embedding":
            weights = [np.concatenate([weights[0], new.get_weights()[0][len(weights[0]):]])]
        new.set_weights(weights)


@pytest.mark.parametrize(("overrides", "longer_length"), [
    ({"pooling": "mean"}, LENGTH + checks.EXTRA_PADDING),
    ({"pooling": "max", "norm_first": False}, LENGTH + checks.EXTRA_PADDING),
    ({"pooling": "cls", "positional": "sinusoidal"}, LENGTH + checks.EXTRA_PADDING),
    ({"pooling": "mean", "positional": "sinusoidal"}, None),  # a model for any length
])
def test_padding_never_reaches_the_output(overrides, longer_length):
    checks.assert_padding_never_reaches_the_output(
        tiny(**overrides), tiny(length=longer_length, **overrides), token_ids(6), atol=1e-5,
        table="token_embedding", move_weights=move_weights)


def test_an_empty_text_gives_finite_probabilities():
    for pooling in ("mean", "max", "cls"):
        checks.assert_empty_texts_give_finite_probabilities(tiny(pooling=pooling), LENGTH)


def test_trains_and_learns_whether_a_token_appears():
    # the preset (pre-LN, masked mean pooling, dropout 0.1) at a tiny size
    model = tiny(num_blocks=1, embed_dim=16, ff_dim=32)
    checks.assert_learns_whether_a_token_appears(model, vocab=VOCAB, length=LENGTH, epochs=4)


@pytest.mark.parametrize("overrides", [
    {"pooling": "cls", "positional": "sinusoidal", "norm_first": False}, {"pooling": "mean"},
])
def test_save_and_load_give_the_same_predictions(tmp_path, overrides):
    checks.assert_save_and_load_agree(tiny(**overrides), token_ids(4), tmp_path)


def test_mixed_precision_keeps_a_float32_output():
    with precision_policy("mixed_float16"):
        model = tiny(positional="sinusoidal", pooling="max")
    checks.assert_float32_output_in_mixed_precision(model, "block0_attention", token_ids(3))


@pytest.mark.parametrize(("overrides", "shape", "words"), [
    ({"embed_dim": 10, "num_heads": 4}, (LENGTH,), ["model.embed_dim", "10", "num_heads=4", "8"]),
    ({"pooling": "foo"}, (LENGTH,), ["model.pooling", "foo", "mean, max, cls"]),
    ({"positional": "rotary"}, (LENGTH,), ["model.positional", "rotary", "learned, sinusoidal"]),
    ({"num_heads": 0}, (LENGTH,), ["model.num_heads", "0"]),
    ({"positional": "learned"}, (None,), ["model.positional", "sequence length"]),
    ({}, (28, 28, 1), ["model=transformer", "(sequence_length,)", "(28, 28, 1)"]),
])
def test_bad_settings_are_named_in_one_line(overrides, shape, words):
    with one_line_error(*words):
        build(model_cfg("transformer", **overrides), shape, CLASSES, vocab_size=VOCAB)
