"""kexp.models.transformer: the Transformer encoder text classifier."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from kexp.errors import KexpError
from kexp.models import build, load_model
from kexp.training.precision import precision_policy
from tests.test_models import model_cfg

VOCAB, LENGTH, CLASSES = 300, 32, 4
TINY = {"num_blocks": 2, "num_heads": 2, "embed_dim": 8, "ff_dim": 16}



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
    return build(model_cfg("transformer", **{**TINY, **overrides}), (length,), CLASSES,
                 vocab_size=VOCAB)


def predict(model: keras.Model, ids: np.ndarray) -> np.ndarray:
    return keras.ops.convert_to_numpy(model(ids, training=False))


@pytest.mark.parametrize("pooling", ["mean", "max", "cls"])
@pytest.mark.parametrize("positional", ["learned", "sinusoidal"])
def test_gives_class_probabilities(pooling, positional):
    model = tiny(pooling=pooling, positional=positional)
    probs = predict(model, token_ids(5).astype("int64"))  # TextVectorization hands out int64
    assert probs.shape == (5, CLASSES)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


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


@pytest.mark.parametrize(("overrides", "longer_length"), [
    ({"pooling": "mean"}, LENGTH + 9),
    ({"pooling": "max", "norm_first": False}, LENGTH + 9),
    ({"pooling": "cls", "positional": "sinusoidal"}, LENGTH + 9),
    ({"pooling": "mean", "positional": "sinusoidal"}, None),  # a model for any length
])
def test_padding_never_reaches_the_output(overrides, longer_length):
    model = tiny(**overrides)
    ids = token_ids(6)
    probs = predict(model, ids)

    # anything after the first 0 is padding, whatever its ids
    junk = ids.copy()
    junk[np.cumsum(ids == 0, axis=1) > 0] = 7
    junk[np.arange(6), np.argmax(ids == 0, axis=1)] = 0  # the text still ends with a 0
    np.testing.assert_allclose(predict(model, junk), probs, atol=1e-5)

    # more padding at the end: the same weights on longer sequences (learned positions
    # past the old length keep weights of their own, which must not matter either)
    longer = tiny(length=longer_length, **overrides)
    for old, new in zip(model.layers, longer.layers, strict=True):
        weights = old.get_weights()
        if old.name == "position_embedding":
            weights = [np.concatenate([weights[0], new.get_weights()[0][len(weights[0]):]])]
        new.set_weights(weights)
    padded = np.pad(ids, ((0, 0), (0, 9)))
    np.testing.assert_allclose(predict(longer, padded), probs, atol=1e-5)

    # the embedding of the padding id plays no part; that of a token of the text does
    table = model.get_layer("token_embedding")
    weights = keras.ops.convert_to_numpy(table.embeddings)
    weights[0] = 100.0
    table.embeddings.assign(weights)
    np.testing.assert_allclose(predict(model, ids), probs, atol=1e-5)
    weights[ids[0, 0]] = 100.0
    table.embeddings.assign(weights)
    assert not np.allclose(predict(model, ids)[0], probs[0], atol=1e-4)


def test_an_empty_text_gives_finite_probabilities():
    for pooling in ("mean", "max", "cls"):
        probs = predict(tiny(pooling=pooling), np.zeros((2, LENGTH), dtype="int32"))
        assert np.isfinite(probs).all()
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_trains_and_learns_whether_a_token_appears():
    # the preset (pre-LN, masked mean pooling, dropout 0.1) at a tiny size
    ids = token_ids(500, seed=1)
    ids[ids == 5] = 6
    label = np.random.default_rng(2).random(500) < 0.5
    lengths = np.argmax(np.pad(ids, ((0, 0), (0, 1))) == 0, axis=1)
    where = (np.random.default_rng(3).random(500) * lengths).astype(int)
    ids[label, where[label]] = 5  # the label: token 5 is somewhere in the text
    model = tiny(num_blocks=1, embed_dim=16, ff_dim=32)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    model.fit(ids[:400], label[:400].astype(int), epochs=4, batch_size=32, verbose=0)
    accuracy = np.mean(predict(model, ids[400:]).argmax(axis=1) == label[400:])
    assert accuracy > 0.85  # chance is 0.5


@pytest.mark.parametrize("overrides", [
    {"pooling": "cls", "positional": "sinusoidal", "norm_first": False}, {"pooling": "mean"},
])
def test_save_and_load_give_the_same_predictions(tmp_path, overrides):
    model = tiny(**overrides)
    ids = token_ids(4)
    model.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(predict(loaded, ids), predict(model, ids), atol=1e-6)


def test_mixed_precision_keeps_a_float32_output():
    with precision_policy("mixed_float16"):
        model = tiny(positional="sinusoidal", pooling="max")
    assert model.get_layer("block0_attention").compute_dtype == "float16"
    probs = predict(model, token_ids(3))
    assert probs.dtype == np.float32 and np.isfinite(probs).all()


@pytest.mark.parametrize(("overrides", "shape", "words"), [
    ({"embed_dim": 10, "num_heads": 4}, (LENGTH,), ["model.embed_dim", "10", "num_heads=4", "8"]),
    ({"pooling": "foo"}, (LENGTH,), ["model.pooling", "foo", "mean, max, cls"]),
    ({"positional": "rotary"}, (LENGTH,), ["model.positional", "rotary", "learned, sinusoidal"]),
    ({"num_heads": 0}, (LENGTH,), ["model.num_heads", "0"]),
    ({"positional": "learned"}, (None,), ["model.positional", "sequence length"]),
    ({}, (28, 28, 1), ["model=transformer", "(sequence_length,)", "(28, 28, 1)"]),
])
def test_bad_settings_are_named_in_one_line(overrides, shape, words):
    with pytest.raises(KexpError) as err:
        build(model_cfg("transformer", **overrides), shape, CLASSES, vocab_size=VOCAB)
    assert "\n" not in str(err.value)
    for word in words:
        assert word in str(err.value)
