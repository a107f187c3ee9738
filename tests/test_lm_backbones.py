"""The text backbones a language model reads (task=language_model): every position's features,
each depending only on the tokens up to it, and a ReversibleEmbedding to tie the head to."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from kexp.config import compose, config_dir
from kexp.errors import KexpError
from kexp.models import backbone, load_model
from kexp.models.sequence import token_embedding

VOCAB, CONTEXT = 20, 12
RNN = ["model.units=8", "model.embedding_dim=8"]
ATTENTION = ["model.num_heads=2", "model.embed_dim=8"]
GPT = [*ATTENTION, "model.num_layers=2", "model.pooling=none"]
CAUSAL = {
    "rnn": [*RNN, "model.layers=2", "model.pooling=none"],
    "lstm": [*RNN, "model.pooling=none"],
    "gru": [*RNN, "model.pooling=none"],
    "tcn": ["model.filters=8", "model.embedding_dim=8", "model.dilations=[1,2]",
            "model.pooling=none"],
    "transformer": [*ATTENTION, "model.ff_dim=16", "model.pooling=none"],
    "transformer-sinusoidal-post-ln": [*ATTENTION, "model.ff_dim=16", "model.pooling=none",
                                       "model.positional=sinusoidal", "model.norm_first=false"],
    "gpt": GPT,
    "gpt_mini": GPT,
}


@pytest.fixture(autouse=True)
def seeded():
    keras.utils.set_random_seed(0)


def model_cfg(name: str, overrides: list[str]):
    return compose(config_dir(), "train", [f"model={name.split('-')[0]}", *overrides]).model


def build(name: str, overrides: list[str], shape=(CONTEXT,)) -> keras.Model:
    return backbone(model_cfg(name, overrides), shape, vocab_size=VOCAB)


def tokens(n: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(2, VOCAB, size=(n, CONTEXT)).astype("int32")


def features(model: keras.Model, ids: np.ndarray) -> np.ndarray:
    return keras.ops.convert_to_numpy(model(ids, training=False))


@pytest.mark.parametrize("name", list(CAUSAL))
def test_every_position_sees_only_the_tokens_up_to_it(name):
    model = build(name, CAUSAL[name])
    ids = tokens()
    out = features(model, ids)
    assert out.ndim == 3 and out.shape[:2] == (len(ids), CONTEXT)
    for t in (0, 3, 7, CONTEXT - 2):
        changed = ids.copy()
        changed[:, t + 1] = (changed[:, t + 1] - 2 + 1) % (VOCAB - 2) + 2  # another token
        new = features(model, changed)
        np.testing.assert_allclose(new[:, :t + 1], out[:, :t + 1], atol=1e-5)
        assert not np.allclose(new[:, t + 1], out[:, t + 1], atol=1e-5), f"t+1={t + 1}"

    embedding = token_embedding(model)
    assert isinstance(embedding, keras.layers.ReversibleEmbedding)
    if out.shape[-1] == embedding.output_dim:  # what a tied head computes
        logits = embedding(model(ids, training=False), reverse=True)
        assert tuple(logits.shape) == (len(ids), CONTEXT, VOCAB)


@pytest.mark.parametrize(("name", "pooling"), [("rnn", "last"), ("tcn", "mean"),
                                               ("transformer", "cls"), ("gpt", "last")])
def test_the_pooled_backbones_embed_with_a_reversible_embedding(name, pooling):
    sizes = {"rnn": RNN, "tcn": ["model.filters=8", "model.embedding_dim=8",
                                 "model.dilations=[1]"],
             "transformer": [*ATTENTION, "model.ff_dim=16"], "gpt": GPT[:-1]}[name]
    model = build(name, [*sizes, f"model.pooling={pooling}"])
    assert isinstance(token_embedding(model), keras.layers.ReversibleEmbedding)
    assert len(model.output.shape) == 2


def one_line(caught: pytest.ExceptionInfo) -> str:
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_a_gpt_needs_a_fixed_context():
    with pytest.raises(KexpError) as caught:
        build("gpt", GPT, shape=(None,))
    assert "data.context" in one_line(caught)


def test_a_bidirectional_rnn_cannot_read_every_position():
    with pytest.raises(KexpError) as caught:
        build("bilstm", [*RNN, "model.pooling=none"])
    assert one_line(caught).startswith("model.bidirectional")


def test_gpt_heads_must_divide_its_width():
    with pytest.raises(KexpError) as caught:
        build("gpt", [*GPT, "model.embed_dim=10", "model.num_heads=4"])
    assert "model.embed_dim" in one_line(caught) and "num_heads=4" in one_line(caught)


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_a_pooled_gpt_ignores_the_padding_after_a_text(pooling):
    model = build("gpt", [*GPT[:-1], f"model.pooling={pooling}"])
    ids = tokens()
    ids[:, 7:] = 0  # texts of 7 tokens, padded at the end
    out = features(model, ids)
    assert out.shape == (len(ids), 8)
    junk = ids.copy()
    junk[:, 8:] = 5  # after the text's first 0, whatever the ids
    np.testing.assert_allclose(features(model, junk), out, atol=1e-5)
    shorter = ids.copy()
    shorter[:, 6] = 0  # a token of the text does count
    assert not np.allclose(features(model, shorter), out, atol=1e-5)


def test_the_gpt_preset_classifies_and_the_language_model_reads_every_position():
    cfg = model_cfg("gpt", [])
    assert (cfg.pooling, cfg.num_layers, cfg.num_heads, cfg.embed_dim, cfg.dropout) == \
        ("last", 6, 6, 384, 0.2)
    mini = model_cfg("gpt_mini", [])
    assert (mini.pooling, mini.num_layers, mini.num_heads, mini.embed_dim, mini.dropout) == \
        ("last", 4, 4, 128, 0.0)
    from kexp.models.gpt import gpt

    model = gpt((CONTEXT,), VOCAB, num_layers=1, num_heads=2, embed_dim=8)  # builder default
    assert model.output_shape == (None, CONTEXT, 8)
    assert model.get_layer("block0_ffn_hidden").units == 32  # ff_dim None: 4 * embed_dim


def test_a_saved_gpt_loads_and_gives_the_same_features(tmp_path):
    model = build("gpt", GPT)
    ids = tokens()
    model.save(tmp_path / "gpt.keras")
    loaded = load_model(tmp_path / "gpt.keras")
    assert isinstance(token_embedding(loaded), keras.layers.ReversibleEmbedding)
    np.testing.assert_allclose(features(loaded, ids), features(model, ids), atol=1e-6)
