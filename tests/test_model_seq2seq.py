"""kexp.models.rnn_seq2seq and kexp.models.transformer_seq2seq: the encoder-decoders that
task=seq2seq trains (presets rnn_seq2seq, transformer_seq2seq)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from kexp.models import backbone_names, load_model, resolve_builder
from kexp.models.encoder_decoder import SOURCE, TARGET, is_encoder_decoder
from kexp.models.rnn_seq2seq import rnn_seq2seq
from kexp.models.transformer_seq2seq import transformer_seq2seq
from kexp.training.precision import precision_policy
from tests.model_checks import one_line_error
from tests.sequence_checks import seeded  # noqa: F401 (an autouse fixture: the same weights)
from tests.test_models import model_cfg

LS, LT, VOCAB, TARGET_VOCAB = 7, 6, 13, 11
START = 2  # the decoder input's first id
RNN_TINY = {"units": 8, "embedding_dim": 8, "dropout": 0.0}
TRANSFORMER_TINY = {"num_layers": 2, "num_heads": 2, "embed_dim": 8, "ff_dim": 16,
                    "dropout": 0.0}
FAMILIES = {"rnn": (rnn_seq2seq, RNN_TINY), "transformer": (transformer_seq2seq,
                                                             TRANSFORMER_TINY)}

# (family, overrides): every attention of the rnn, both position encodings of the transformer
CASES = [
    pytest.param("rnn", {"attention": "none"}, id="rnn-none"),
    pytest.param("rnn", {"attention": "bahdanau"}, id="rnn-bahdanau"),
    pytest.param("rnn", {"attention": "luong_dot"}, id="rnn-luong_dot"),
    pytest.param("rnn", {"attention": "luong_general"}, id="rnn-luong_general"),
    pytest.param("rnn", {"cell": "lstm", "layers": 2, "bidirectional": True,
                         "attention": "luong_dot"}, id="rnn-bilstm-2-luong_dot"),
    pytest.param("rnn", {"cell": "lstm", "bidirectional": True, "attention": "bahdanau"},
                 id="rnn-bilstm-bahdanau"),
    pytest.param("transformer", {"positional": "sinusoidal"}, id="transformer-sinusoidal"),
    pytest.param("transformer", {"positional": "learned"}, id="transformer-learned"),
    pytest.param("transformer", {"norm_first": False}, id="transformer-post_ln"),
]


def build(family: str, source_length: int | None = LS, target_length: int | None = LT,
          vocab: int = VOCAB, target_vocab: int = TARGET_VOCAB, **overrides) -> keras.Model:
    builder, tiny = FAMILIES[family]
    return builder((source_length,), vocab, (target_length,), target_vocab,
                   **{**tiny, **overrides})


def sources(n: int, seed: int = 0, length: int = LS) -> np.ndarray:
    """Texts of 1..4 tokens (ids 2..VOCAB-1), padded with 0 at the end to `length`."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(2, VOCAB, size=(n, length))
    ends = rng.integers(1, 5, size=n)
    ids[np.arange(length)[None, :] >= ends[:, None]] = 0
    return ids.astype("int32")


def targets(n: int, seed: int = 1, padded: bool = True) -> np.ndarray:
    """Decoder inputs: START, then ids 3..TARGET_VOCAB-1, padded with 0 after 2..LT tokens
    (`padded=False`: none padded)."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(3, TARGET_VOCAB, size=(n, LT))
    ids[:, 0] = START
    if padded:
        ends = rng.integers(2, LT + 1, size=n)
        ids[np.arange(LT)[None, :] >= ends[:, None]] = 0
    return ids.astype("int32")


def predict(model: keras.Model, source: np.ndarray, target: np.ndarray) -> np.ndarray:
    return keras.ops.convert_to_numpy(model([source, target], training=False))


def move_weights(model: keras.Model, longer: keras.Model) -> None:
    """`model`'s weights into `longer`, the same layout for longer sequences: a learned
    position table takes `model`'s rows for the positions both have."""
    for short, long_ in zip(model.weights, longer.weights, strict=True):
        value = keras.ops.convert_to_numpy(short)
        if value.shape != tuple(long_.shape):
            table = keras.ops.convert_to_numpy(long_)
            table[: value.shape[0]] = value
            value = table
        long_.assign(value)


@pytest.mark.parametrize(("family", "overrides"), CASES)
def test_logits_are_float32_per_target_position(family, overrides):
    model = build(family, **overrides)
    assert [t.name for t in model.inputs] == [SOURCE, TARGET]
    assert all(t.dtype == "int32" for t in model.inputs)
    assert model.output_shape == (None, LT, TARGET_VOCAB)
    assert model.get_layer("logits").dtype_policy.compute_dtype == "float32"
    logits = predict(model, sources(3).astype("int64"), targets(3).astype("int64"))
    assert logits.shape == (3, LT, TARGET_VOCAB) and logits.dtype == np.float32
    assert np.isfinite(logits).all()
    out = model([sources(3), targets(3)], training=False)
    assert getattr(out, "_keras_mask", None) is None  # the task weights its loss itself


@pytest.mark.parametrize(("family", "overrides"), [CASES[1], CASES[4], CASES[6]])
def test_mixed_precision_keeps_float32_logits(family, overrides):
    with precision_policy("mixed_float16"):
        model = build(family, **overrides)
    table = "source_embedding"
    assert model.get_layer(table).compute_dtype == "float16"
    logits = predict(model, sources(3), targets(3))
    assert logits.dtype == np.float32 and np.isfinite(logits).all()


@pytest.mark.parametrize(("family", "overrides"), CASES)
def test_the_decoder_is_causal(family, overrides):
    model = build(family, **overrides)
    source = sources(4)
    for padded in (False, True):
        target = targets(4, padded=padded)
        logits = predict(model, source, target)
        for t in range(LT - 1):
            changed = target.copy()
            changed[:, t + 1] = np.where(target[:, t + 1] == 3, 4, 3)  # another real id
            after = predict(model, source, changed)
            np.testing.assert_allclose(after[:, : t + 1], logits[:, : t + 1], atol=1e-5)
            # where step t + 1 is in the text (not after its end: masked in a recurrent decoder)
            real = np.cumsum(target == 0, axis=1)[:, t + 1] == 0
            diff = np.abs(after[:, t + 1] - logits[:, t + 1]).max(axis=-1)
            assert (diff[real] > 1e-5).all()


@pytest.mark.parametrize(("family", "overrides"), CASES)
def test_the_source_reaches_every_target_position(family, overrides):
    model = build(family, **overrides)
    source, target = sources(4), targets(4, padded=False)
    changed = source.copy()
    changed[:, 0] = np.where(source[:, 0] == 5, 6, 5)
    diff = np.abs(predict(model, changed, target) - predict(model, source, target))
    assert (diff.max(axis=-1) > 1e-5).all()


@pytest.mark.parametrize(("family", "overrides"), CASES)
def test_the_source_padding_changes_nothing(family, overrides):
    model = build(family, **overrides)
    source, target = sources(6), targets(6)
    logits = predict(model, source, target)

    # anything after the source's first 0 is padding, whatever its ids
    junk = source.copy()
    junk[np.cumsum(source == 0, axis=1) > 0] = 7
    junk[np.arange(len(source)), np.argmax(source == 0, axis=1)] = 0  # the text still ends
    np.testing.assert_allclose(predict(model, junk, target), logits, atol=1e-5)

    # more padding: the same weights on longer sources; the attention must give the extra
    # padded positions zero weight (this is what fails when the attention gets no mask)
    longer = build(family, source_length=LS + 5, **overrides)
    move_weights(model, longer)
    padded = np.pad(source, ((0, 0), (0, 5)))
    np.testing.assert_allclose(predict(longer, padded, target), logits, atol=1e-5)

    # the embedding of the padding id plays no part; that of a token of the text does
    table = model.get_layer("source_embedding")
    weights = keras.ops.convert_to_numpy(table.embeddings)
    weights[0] = 100.0
    table.embeddings.assign(weights)
    np.testing.assert_allclose(predict(model, source, target), logits, atol=1e-5)
    weights[source[0, 0]] = 100.0
    table.embeddings.assign(weights)
    assert not np.allclose(predict(model, source, target)[0], logits[0], atol=1e-4)


@pytest.mark.parametrize(("family", "overrides"), [CASES[1], CASES[2], CASES[6]])
def test_any_length_without_learned_positions(family, overrides):
    model = build(family, source_length=None, target_length=None, **overrides)
    logits = predict(model, sources(2, length=9), targets(2))
    assert logits.shape == (2, LT, TARGET_VOCAB)


def test_an_empty_source_gives_finite_logits():
    for family, overrides in [("rnn", {"bidirectional": True}), ("transformer", {})]:
        model = build(family, **overrides)
        logits = predict(model, np.zeros((2, LS), "int32"), targets(2))
        assert np.isfinite(logits).all()


def test_shared_embeddings_use_one_table():
    model = build("transformer", target_vocab=VOCAB, shared_embeddings=True)
    tables = [layer for layer in model.layers if isinstance(layer, keras.layers.Embedding)]
    assert [t.name for t in tables] == ["shared_embedding"]  # sinusoidal: no position tables
    separate = build("transformer", target_vocab=VOCAB)
    assert separate.count_params() - model.count_params() == VOCAB * 8


def test_bidirectional_decoder_has_the_encoder_width():
    model = build("rnn", cell="lstm", bidirectional=True, layers=2)
    decoder = model.get_layer("decoder_lstm_1")
    assert decoder.units == 2 * RNN_TINY["units"]
    assert isinstance(model.get_layer("encoder_bilstm_0"), keras.layers.Bidirectional)


@pytest.mark.parametrize(("family", "overrides"), [CASES[1], CASES[3], CASES[4], CASES[7]])
def test_save_and_load_give_the_same_logits(family, overrides, tmp_path):
    model = build(family, **overrides)
    source, target = sources(3), targets(3)
    model.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras")  # safe mode
    np.testing.assert_allclose(predict(loaded, source, target), predict(model, source, target),
                               atol=1e-6)


@pytest.mark.parametrize(("family", "overrides", "words"), [
    ("rnn", {"cell": "rnnx"}, ["model.cell", "rnnx", "gru, lstm"]),
    ("rnn", {"attention": "foo"}, ["model.attention", "foo", "bahdanau, luong_dot"]),
    ("rnn", {"layers": 0}, ["model.layers", "0"]),
    ("rnn", {"units": -1}, ["model.units"]),
    ("rnn", {"dropout": 1.0}, ["model.dropout", "[0, 1)"]),
    ("rnn", {"kernel_initializer": "nope"}, ["model.kernel_initializer", "nope"]),
    ("transformer", {"embed_dim": 10, "num_heads": 4}, ["model.embed_dim", "num_heads"]),
    ("transformer", {"shared_embeddings": True}, ["model.shared_embeddings", "13", "11"]),
    ("transformer", {"positional": "rotary"}, ["model.positional", "rotary"]),
    ("transformer", {"activation": "relu7"}, ["model.activation", "relu7"]),
    ("transformer", {"num_layers": 0}, ["model.num_layers"]),
    ("transformer", {"positional": "learned", "source_length": None}, ["model.positional",
                                                                       "sinusoidal"]),
])
def test_bad_knobs_are_one_line_errors(family, overrides, words):
    with one_line_error(*words):
        build(family, **overrides)


def test_bad_shapes_and_vocabularies_are_one_line_errors():
    with one_line_error("target shape", "(6, 2)"):
        rnn_seq2seq((LS,), VOCAB, (LT, 2), TARGET_VOCAB, **RNN_TINY)
    with one_line_error("(7, 3)"):
        transformer_seq2seq((LS, 3), VOCAB, (LT,), TARGET_VOCAB, **TRANSFORMER_TINY)
    with one_line_error("target_vocab_size", "1"):
        rnn_seq2seq((LS,), VOCAB, (LT,), 1, **RNN_TINY)


@pytest.mark.parametrize("name", ["rnn_seq2seq", "transformer_seq2seq"])
def test_presets_are_encoder_decoders_and_not_backbones(name):
    cfg = model_cfg(name)
    builder = resolve_builder(cfg._target_)
    assert is_encoder_decoder(builder)
    assert name not in backbone_names()
    knobs = {k: v for k, v in cfg.items() if k not in ("_target_", "name")}
    model = builder(input_shape=(LS,), vocab_size=VOCAB, target_shape=(LT,),
                    target_vocab_size=TARGET_VOCAB, **{**knobs, "width": 0.0625})
    assert model.output_shape == (None, LT, TARGET_VOCAB)


# ------------------------------------------------------------------------- learning to copy

COPY_LENGTH = 7  # source: up to 6 tokens and padding; target: the tokens and [END]
END = 3


def copy_task(n: int, seed: int) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """([source, decoder input], labels, weights): the target is the source itself."""
    rng = np.random.default_rng(seed)
    source = rng.integers(4, VOCAB, size=(n, COPY_LENGTH)).astype("int32")
    ends = rng.integers(3, COPY_LENGTH, size=n)
    steps = np.arange(COPY_LENGTH)[None, :]
    source[steps >= ends[:, None]] = 0
    labels = np.where(steps == ends[:, None], END, source)  # the text, [END], padding
    decoder = np.concatenate([np.full((n, 1), START), labels[:, :-1]], axis=1)
    weights = (steps <= ends[:, None]).astype("float32")
    return [source, decoder.astype("int32")], labels, weights


@pytest.mark.parametrize(("family", "overrides", "epochs"), [
    ("rnn", {"attention": "bahdanau", "units": 64, "embedding_dim": 32}, 6),
    ("transformer", {"num_layers": 1, "embed_dim": 32, "num_heads": 4, "ff_dim": 64}, 8),
])
def test_learns_to_copy(family, overrides, epochs):
    """120-160 steps of Adam from 1e-2 (cosine decay: at a constant 1e-2 the accuracy swings
    by 10 points from one epoch to the next) on a copy task: right on > 90% of the tokens."""
    model = build(family, COPY_LENGTH, COPY_LENGTH, VOCAB, VOCAB, **overrides)
    x, y, w = copy_task(640, seed=0)
    lr = keras.optimizers.schedules.CosineDecay(1e-2, decay_steps=epochs * 640 // 32)
    model.compile(optimizer=keras.optimizers.Adam(lr),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, sample_weight=w, epochs=epochs, batch_size=32, verbose=0)
    x, y, w = copy_task(200, seed=1)
    predicted = predict(model, *x).argmax(axis=-1)
    accuracy = (predicted == y)[w > 0].mean()  # chance: 1 in 13
    assert accuracy > 0.9, accuracy
