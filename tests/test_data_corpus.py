"""A language model's corpus: data=text_file and data=tiny_shakespeare, the Tokenizer, the
epoch-keyed training windows and the validation/test windows that count every target once."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from kexp.data.tokenizer import UNK, VOCABULARY_FILE, Tokenizer
from kexp.errors import KexpError

REPO = Path(__file__).resolve().parents[1]
CONTEXT = 8
BATCH = 16
LETTERS = list("abcdefgh ij\n.,")


def data_cfg(config: str, /, **overrides):
    """conf/data/<config>.yaml with `overrides` merged in."""
    return OmegaConf.merge(OmegaConf.load(REPO / "conf" / "data" / f"{config}.yaml"), overrides)


def write(path: Path, n: int = 2000, seed: int = 0, letters: list[str] = LETTERS) -> str:
    text = "".join(np.random.default_rng(seed).choice(letters, n))
    path.write_bytes(text.encode("utf-8"))
    return text


def corpus(tmp_path: Path, n: int = 2000, **overrides):
    """A generated file and the data config that reads it (context 8)."""
    text = write(tmp_path / "book.txt", n)
    return text, data_cfg("text_file", **{"path": str(tmp_path / "book.txt"),
                                          "context": CONTEXT, **overrides})


def load(cfg, seed: int | None = 0, batch: int = BATCH):
    from kexp.data import load as load_data

    return load_data(cfg, batch, seed)


def ids_of(bundle, text: str) -> np.ndarray:
    return np.asarray(bundle.tokenizer.encode(text), np.int32)


def epoch_windows(bundle, epoch: int) -> np.ndarray:
    """The training windows of `epoch`: (windows, context + 1) rows of x and y's last id."""
    bundle.epoch.assign(epoch)
    rows = [np.concatenate([x, y[:, -1:]], axis=1) for x, y in bundle.train.as_numpy_iterator()]
    return np.concatenate(rows)


def assert_error(match: str, cfg, seed: int = 0) -> str:
    with pytest.raises(KexpError, match=match) as info:
        load(cfg, seed)
    assert "\n" not in str(info.value), str(info.value)
    return str(info.value)


# ------------------------------------------------------------------ text_file: the splits


def test_the_splits_are_contiguous_and_do_not_overlap(tmp_path):
    from kexp.data.sources.text_file import load_raw

    text, cfg = corpus(tmp_path, 1000)
    raw = load_raw(cfg, 0)
    assert raw.train + raw.val + raw.test == text
    assert raw.train == text[:900] and raw.val == text[900:950] and raw.test == text[950:]
    assert raw.version is None


def test_word_tokens_move_the_split_points_to_whitespace(tmp_path):
    from kexp.data.sources.text_file import load_raw

    words = ["alpha", "beta", "gamma", "delta", "epsilon"]
    text = " ".join(np.random.default_rng(1).choice(words, 400))
    (tmp_path / "w.txt").write_text(text, encoding="utf-8")
    raw = load_raw(data_cfg("text_file", path=str(tmp_path / "w.txt"), tokens="word"), 0)
    assert raw.train + raw.val + raw.test == text
    for left, right in ((raw.train, raw.val), (raw.val, raw.test)):
        assert left[-1].isspace() or right[0].isspace()  # no word cut in two
    assert all(set(part.split()) <= set(words) for part in (raw.train, raw.val, raw.test))


def test_a_folder_of_txt_files_is_read_in_name_order(tmp_path):
    from kexp.data.sources.text_file import load_raw

    folder = tmp_path / "books"
    folder.mkdir()
    (folder / "b.txt").write_text("second file\r\nwith a CRLF", encoding="utf-8")
    (folder / "a.txt").write_bytes("\ufefffirst file".encode())  # a byte-order mark
    (folder / "notes.md").write_text("not read", encoding="utf-8")
    raw = load_raw(data_cfg("text_file", path=str(folder)), 0)
    assert raw.train + raw.val + raw.test == "first file\nsecond file\nwith a CRLF"


def test_the_vocabulary_comes_from_the_training_split_only(tmp_path):
    text = write(tmp_path / "book.txt", 1800) + "Q" * 100 + write(tmp_path / "x.txt", 100)
    (tmp_path / "book.txt").write_text(text, encoding="utf-8")
    bundle = load(data_cfg("text_file", path=str(tmp_path / "book.txt"), context=CONTEXT))
    tok = bundle.tokenizer
    assert tok.unit == "char" and tok.tokens[:2] == ["", UNK] and "Q" not in tok.tokens
    assert sorted(tok.tokens[2:]) == sorted(set(LETTERS))
    assert tok.encode("Qa") == [1, tok.tokens.index("a")]
    # most frequent first, ties by the token; the counts are the training split's
    train = text[:1800]
    assert tok.counts[2:] == sorted(tok.counts[2:], reverse=True)
    assert tok.counts[2:] == [train.count(t) for t in tok.tokens[2:]]
    spec = bundle.spec
    assert spec.token_unit == "char" and spec.vocab_size == len(tok.tokens)
    assert spec.num_tokens == (1800, 100, 100) and spec.input_shape == (CONTEXT,)
    assert spec.num_classes == 0 and spec.class_names == [] and bundle.vocabulary is None
    assert spec.num_train == 1800 // CONTEXT


# ------------------------------------------------------------------ training windows


def test_training_windows_are_shifted_slices_of_the_training_ids(tmp_path):
    text, cfg = corpus(tmp_path, 2000, epoch_tokens=400)
    bundle = load(cfg)
    ids = ids_of(bundle, text[:1800])
    batches = list(bundle.train.as_numpy_iterator())
    windows = 400 // CONTEXT
    assert bundle.spec.num_train == windows
    assert len(batches) == int(bundle.train.cardinality()) == -(-windows // BATCH)
    assert [len(x) for x, _ in batches] == [16, 16, 16, 2]  # the last batch is short
    slices = np.lib.stride_tricks.sliding_window_view(ids, CONTEXT + 1)
    for x, y in batches:
        assert x.dtype == y.dtype == np.int32 and x.shape == y.shape == (len(x), CONTEXT)
        np.testing.assert_array_equal(x[:, 1:], y[:, :-1])
        for row in np.concatenate([x, y[:, -1:]], axis=1):
            assert (slices == row).all(axis=1).any(), row


def test_an_epoch_draws_the_same_windows_whatever_ran_before(tmp_path):
    _, cfg = corpus(tmp_path, 2000, epoch_tokens=320)
    fresh = load(cfg, seed=7)
    epoch_2 = epoch_windows(fresh, 2)  # straight to epoch 2, as a resumed run starts
    resumed = load(cfg, seed=7)
    epoch_0, epoch_1 = epoch_windows(resumed, 0), epoch_windows(resumed, 1)
    np.testing.assert_array_equal(epoch_windows(resumed, 2), epoch_2)
    np.testing.assert_array_equal(epoch_windows(resumed, 0), epoch_0)  # re-read: the same
    assert not np.array_equal(epoch_0, epoch_1) and not np.array_equal(epoch_1, epoch_2)
    assert not np.array_equal(epoch_windows(load(cfg, seed=8), 0), epoch_0)
    # seed None: a random base seed, still a whole epoch of valid windows
    assert epoch_windows(load(cfg, seed=None), 0).shape == epoch_0.shape


def test_epoch_tokens_null_is_one_pass_over_the_training_split(tmp_path):
    _, cfg = corpus(tmp_path, 1000, epoch_tokens=None)
    spec = load(cfg).spec
    assert spec.num_train == 900 // CONTEXT
    _, cfg = corpus(tmp_path, 1000, epoch_tokens=3)  # fewer tokens than a window: one
    assert load(cfg).spec.num_train == 1


# ------------------------------------------------------------------ validation and test


@pytest.mark.parametrize("n", [CONTEXT + 1, CONTEXT + 2, 2 * CONTEXT + 1, 2 * CONTEXT + 2,
                               5 * CONTEXT, 5 * CONTEXT + 3])
def test_ordered_windows_weigh_every_target_once(n):
    from kexp.data.corpus import window_starts

    starts, w = window_starts(n, CONTEXT)
    assert w.dtype == np.float32 and w.shape == (len(starts), CONTEXT)
    assert w.sum() == n - 1
    targets = (starts[:, None] + 1 + np.arange(CONTEXT))[w > 0]
    np.testing.assert_array_equal(targets, np.arange(1, n))
    assert starts.max() + CONTEXT + 1 <= n and (starts[:-1] % CONTEXT == 0).all()


def test_val_and_test_read_their_split_once_in_order(tmp_path):
    text, cfg = corpus(tmp_path, 1000, val_fraction=0.053, test_fraction=0.061)
    bundle = load(cfg, batch=4)
    n_train, n_val, n_test = bundle.spec.num_tokens
    for name, ds, part, count in (
            ("val", bundle.val, text[n_train:n_train + n_val], bundle.spec.num_val),
            ("test", bundle.test, text[n_train + n_val:], bundle.spec.num_test)):
        ids = ids_of(bundle, part)
        xs, ys, ws = (np.concatenate(parts) for parts in zip(*ds.as_numpy_iterator(), strict=True))
        assert len(xs) == count, name
        assert ws.dtype == np.float32 and ws.shape == xs.shape == ys.shape
        assert ws.sum() == len(ids) - 1, name
        np.testing.assert_array_equal(ys[ws > 0], ids[1:])
        np.testing.assert_array_equal(xs[:, 1:], ys[:, :-1])
        np.testing.assert_array_equal(xs[0], ids[:CONTEXT])


def test_train_on_val_appends_the_val_text_and_fingerprint_can_be_off(tmp_path):
    _, cfg = corpus(tmp_path, 1000)
    first = load(cfg).spec
    assert re.fullmatch(r"[0-9a-f]{16}", first.fingerprint)
    assert load(cfg).spec.fingerprint == first.fingerprint
    joined = load(OmegaConf.merge(cfg, {"train_on_val": True, "fingerprint": False})).spec
    assert joined.num_tokens == (950, 50, 50) and joined.fingerprint is None


# ------------------------------------------------------------------ the Tokenizer


def test_word_tokens_punctuation_and_lowercase():
    text = "The cat, the HAT. Don't (stop)!"
    split = Tokenizer.fit(text, "word")
    assert split.split(text) == ["The", "cat", ",", "the", "HAT", ".", "Don", "'", "t", "(",
                                 "stop", ")", "!"]
    assert Tokenizer.fit(text, "word", punctuation="strip").split(text) == [
        "The", "cat", "the", "HAT", "Dont", "stop"]
    assert Tokenizer.fit(text, "word", punctuation="keep").split(text) == [
        "The", "cat,", "the", "HAT.", "Don't", "(stop)!"]
    lower = Tokenizer.fit(text, "word", lowercase=True)
    assert lower.tokens[2] == "the" and lower.counts[2] == 2 and "The" not in lower.tokens
    assert lower.encode("THE Cat") == lower.encode("the cat")
    assert lower.decode(lower.encode("the cat, the hat. (stop)!")) == "the cat, the hat. (stop)!"
    assert lower.encode("a dog", strict_key="prompt") == [1, 1]  # words: [UNK], no error
    assert lower.decode([0, 1, lower.tokens.index("cat"), 0]) == "[UNK] cat"


def test_max_tokens_keeps_the_most_frequent_and_the_rest_is_unk():
    text = "a a a a b b b c c d"
    tok = Tokenizer.fit(text, "word", max_tokens=4)
    assert tok.tokens == ["", UNK, "a", "b"] and tok.counts == [0, 3, 4, 3]
    assert tok.encode("a c d b") == [2, 1, 1, 3]
    ties = Tokenizer.fit("z y x z y x", "word")
    assert ties.tokens[2:] == ["x", "y", "z"]  # equal counts: ordered by the token
    assert Tokenizer.fit("z y x z y x", "word") == ties


def test_char_tokenizer_round_trips_through_json_and_its_file(tmp_path):
    text = "First Citizen:\nBefore we proceed any further, hear me speak.\n\tÉtude — ok"
    tok = Tokenizer.fit(text, "char")
    assert tok.decode(tok.encode(text)) == text
    assert 0 not in tok.encode(text) and tok.vocab_size == len(set(text)) + 2
    assert Tokenizer.from_json(json.loads(json.dumps(tok.to_json()))) == tok
    saved = tok.save(tmp_path / VOCABULARY_FILE)
    data = json.loads(saved.read_text(encoding="utf-8"))
    assert {"version", "unit", "tokens", "counts", "lowercase", "punctuation"} <= set(data)
    assert Tokenizer.load(saved) == tok and Tokenizer.load(tmp_path) == tok
    (tmp_path / "bad.json").write_text("{nope", encoding="utf-8")
    with pytest.raises(KexpError, match="bad.json' is not a kexp vocabulary"):
        Tokenizer.load(tmp_path / "bad.json")


def test_a_prompt_with_unknown_characters_names_each_of_them():
    tok = Tokenizer.fit("hello world", "char")
    with pytest.raises(KexpError) as info:
        tok.encode("hQllé Q", strict_key="prompt")
    assert str(info.value) == ("prompt: characters not in the vocabulary: 'Q', 'é' (the run's "
                               "vocabulary holds 8 characters)")
    assert tok.encode("hQ") == [tok.tokens.index("h"), 1]  # not strict: [UNK]


# ------------------------------------------------------------------ bad input, one line each


def test_bad_files_are_one_line_errors_naming_them(tmp_path):
    assert_error(r"data.path: '.*nowhere.txt' does not exist",
                 data_cfg("text_file", path=str(tmp_path / "nowhere.txt")))
    (tmp_path / "empty_dir").mkdir()
    assert_error(r"data.path: '.*empty_dir' is a folder with no .txt files",
                 data_cfg("text_file", path=str(tmp_path / "empty_dir")))
    (tmp_path / "empty.txt").write_text(" \n", encoding="utf-8")
    assert_error(r"data.path: '.*empty.txt' is empty",
                 data_cfg("text_file", path=str(tmp_path / "empty.txt")))
    (tmp_path / "latin1.txt").write_bytes(b"abc" * 10 + b"\xff" + b"def")
    assert_error(r"data.path: '.*latin1.txt' is not UTF-8 text: byte 0xff at offset 30",
                 data_cfg("text_file", path=str(tmp_path / "latin1.txt")))


@pytest.mark.parametrize("overrides, match", [
    ({"tokens": "byte"}, r"data.tokens: 'byte' .*char or word"),
    ({"context": 0}, r"data.context: 0 must be a positive integer"),
    ({"epoch_tokens": 0}, r"data.epoch_tokens: 0 must be a positive integer or null"),
    ({"lowercase": "yes"}, r"data.lowercase: 'yes' must be true or false"),
    ({"punctuation": "drop"}, r"data.punctuation: 'drop' .*split, strip or keep"),
    ({"max_tokens": 2}, r"data.max_tokens: 2 must be an integer >= 3"),
    ({"fingerprint": "no"}, r"data.fingerprint: 'no' must be true or false"),
    ({"val_fraction": 0.5, "test_fraction": 0.5}, r"data.val_fraction \+ data.test_fraction"),
    ({"context": 1000}, r"data.context: 1000 needs 1001 tokens in the training split, which "
                        r"holds 180 char tokens; lower data.context"),
    ({"context": 12}, r"data: the val split holds 10 char tokens, fewer than data.context \+ 1 "
                      r"= 13; raise data.val_fraction or lower data.context"),
    ({"context": 12, "val_fraction": 0.1}, r"data: the test split holds 10 .*raise "
                                           r"data.test_fraction"),
])
def test_bad_settings_are_one_line_errors_naming_the_key(tmp_path, overrides, match):
    _, cfg = corpus(tmp_path, 200, **overrides)
    assert_error(match, cfg)


# ------------------------------------------------------------------ tiny_shakespeare (TFDS)


def test_tiny_shakespeare_through_tfds():
    import tensorflow_datasets as tfds

    from kexp.data import load as load_data

    cfg = data_cfg("tiny_shakespeare", context=4)
    with tfds.testing.mock_data(num_examples=1):  # random text, the same in each split
        from kexp.data.sources.tiny_shakespeare import load_raw

        raw = load_raw(cfg, 0)
        bundle = load_data(cfg, 4, 0)
    assert raw.version and bundle.spec.version == raw.version
    assert isinstance(raw.train, str) and len(raw.train) >= 5
    spec = bundle.spec
    assert spec.name == "tiny_shakespeare" and spec.token_unit == "char"
    assert spec.num_tokens == (len(raw.train), len(raw.val), len(raw.test))
    _, _, w = next(iter(bundle.val))
    assert sum(float(b[2].numpy().sum()) for b in bundle.val) == len(raw.val) - 1
    assert w.shape[1] == 4


def test_tiny_shakespeare_offline_without_download_fails_fast(tmp_path):
    cfg = data_cfg("tiny_shakespeare", data_dir=str(tmp_path), download=False)
    assert_error(r"data.name: 'tiny_shakespeare' is not in .* and data.download is false", cfg)
