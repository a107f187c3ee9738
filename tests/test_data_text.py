"""Text data: TFDS text sets and the user's own CSV, tokenized by one TextVectorization step."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from omegaconf import OmegaConf

from kexp.data import load
from kexp.errors import KexpError
from tests.conftest import compose_train

REPO = Path(__file__).resolve().parents[1]


def data_cfg(config: str, /, **overrides):
    """conf/data/<config>.yaml with `overrides` merged in."""
    return OmegaConf.merge(OmegaConf.load(REPO / "conf" / "data" / f"{config}.yaml"), overrides)


def unbatch(ds) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = zip(*((x.numpy(), y.numpy()) for x, y in ds), strict=True)
    return np.concatenate(xs), np.concatenate(ys)


def words(ids: np.ndarray, vocabulary: list[str]) -> list[str]:
    return [vocabulary[i] for i in ids if i != 0]


def assert_error(match: str, cfg, seed: int = 0) -> None:
    with pytest.raises(KexpError, match=match) as info:
        load(cfg, 8, seed)
    assert "\n" not in str(info.value)


def assert_padded_at_end(x: np.ndarray) -> None:
    for row in x:
        nonzero = np.flatnonzero(row)
        assert len(nonzero) == 0 or np.all(row[: nonzero[-1] + 1] != 0), row


# ------------------------------------------------------------------ TFDS (mocked and on disk)


def test_imdb_reviews_composed_as_a_user_would():
    cfg = compose_train(["data=imdb_reviews", "data.max_tokens=20"])
    assert cfg.data.source == "tfds_text" and cfg.data.sequence_length == 256
    with tfds.testing.mock_data(num_examples=24):
        bundle = load(cfg.data, 8, cfg.trainer.seed)
    spec = bundle.spec
    assert spec.name == "imdb_reviews" and spec.input_shape == (256,)
    assert spec.num_classes == 2 and len(spec.class_names) == 2
    assert spec.vocab_size == len(bundle.vocabulary) == 20  # the random text has more words
    assert bundle.vocabulary[:2] == ["", "[UNK]"]
    x, y = next(iter(bundle.train))
    assert x.shape == (8, 256) and x.dtype == tf.int32 and y.dtype == tf.int32
    assert bundle.train.element_spec[0].shape.as_list() == [None, 256]
    x_all, y_all = unbatch(bundle.test)
    assert len(y_all) == spec.num_test and set(y_all) <= {0, 1}
    assert 0 <= x_all.min() and x_all.max() < spec.vocab_size
    assert (x_all == 1).any()  # words beyond the 18 most frequent are OOV
    assert_padded_at_end(x_all)


def test_ag_news_subset_yaml():
    with tfds.testing.mock_data(num_examples=16):
        bundle = load(data_cfg("ag_news_subset"), 4, 0)
    spec = bundle.spec
    assert spec.input_shape == (128,) and spec.num_classes == 4
    assert spec.class_names == ["World", "Sports", "Business", "Sci/Tech"]
    assert next(iter(bundle.val))[0].shape == (4, 128)


@pytest.fixture(scope="module")
def tiny_tfds(tmp_path_factory) -> Path:
    """A real TFDS text dataset on disk (slicing honoured): 30 train rows, 10 val, 4 test.

    alpha is the most frequent training word (60), then gamma (30), then beta (20); 'valonly'
    and 'testonly' never occur in the first 75% of train, which is what the vocabulary sees.
    """
    root = tmp_path_factory.mktemp("tfds")
    train = [f"Alpha, alpha! gamma<br />beta word{i}" for i in range(20)]
    train += [f"ALPHA alpha gamma word{i}" for i in range(20, 30)]
    train += ["alpha valonly"] * 10
    test = ["testonly alpha", "gamma testonly", "beta", "word3 alpha"]

    def split(texts):
        return tf.data.Dataset.from_tensor_slices({
            "title": [f"Title{i % 2}" for i in range(len(texts))],
            "text": texts,
            "label": np.arange(len(texts)) % 2,
        })

    tfds.dataset_builders.store_as_tfds_dataset(
        name="kexp_text_tiny", version="1.0.0",
        features=tfds.features.FeaturesDict({
            "title": tfds.features.Text(), "text": tfds.features.Text(),
            "label": tfds.features.ClassLabel(names=["bad", "good"]),
        }),
        split_datasets={"train": split(train), "test": split(test)},
        data_dir=str(root), disable_shuffling=True)
    return root


def tiny_cfg(root: Path, **overrides):
    return data_cfg("imdb_reviews", name="kexp_text_tiny", data_dir=str(root), download=False,
                    val_fraction=0.25, **overrides)


def test_vocabulary_comes_from_the_training_split_only(tiny_tfds):
    bundle = load(tiny_cfg(tiny_tfds, sequence_length=4), 4, 0)
    spec, vocabulary = bundle.spec, bundle.vocabulary
    assert (spec.num_train, spec.num_val, spec.num_test) == (30, 10, 4)
    assert int(bundle.train.cardinality()) == 8  # known: Keras gets its steps per epoch
    assert spec.class_names == ["bad", "good"] and spec.input_shape == (4,)
    # most frequent first; lowercased, punctuation stripped, <br /> a space (no 'gammabrbeta')
    assert vocabulary[:5] == ["", "[UNK]", "alpha", "gamma", "beta"]
    assert spec.vocab_size == len(vocabulary) == 5 + 30
    assert "valonly" not in vocabulary and "testonly" not in vocabulary and "br" not in vocabulary
    test_x, _ = unbatch(bundle.test)  # unshuffled: the file's order
    np.testing.assert_array_equal(test_x[:3], [[1, 2, 0, 0], [3, 1, 0, 0], [4, 0, 0, 0]])
    assert words(test_x[3], vocabulary) == ["word3", "alpha"]
    val_x, _ = unbatch(bundle.val)
    np.testing.assert_array_equal(val_x, [[2, 1, 0, 0]] * 10)
    train_x, _ = unbatch(bundle.train)
    assert (train_x != 1).all()  # every training word is in the vocabulary
    # five words cut to the first four; padding only at the end everywhere
    assert [2, 2, 3, 4] in train_x.tolist()
    assert_padded_at_end(train_x)


def test_max_tokens_and_joined_text_features(tiny_tfds):
    cfg = tiny_cfg(tiny_tfds, max_tokens=7, sequence_length=5, text_features=["title", "text"])
    bundle = load(cfg, 4, 0)
    assert bundle.spec.vocab_size == 7 and bundle.spec.input_shape == (5,)
    # 60, 30, 20, 15 and 15 times in train; ties go to the later word; word0..word29 are cut
    assert bundle.vocabulary == ["", "[UNK]", "alpha", "gamma", "beta", "title1", "title0"]
    test_x, _ = unbatch(bundle.test)  # each text is its title, a space, then the text
    np.testing.assert_array_equal(test_x, [[6, 1, 2, 0, 0], [5, 3, 1, 0, 0], [6, 4, 0, 0, 0],
                                           [5, 1, 2, 0, 0]])


def test_same_config_and_seed_give_the_same_ids(tiny_tfds, tmp_path):
    first, again = load(tiny_cfg(tiny_tfds), 4, 5), load(tiny_cfg(tiny_tfds), 4, 5)
    assert first.vocabulary == again.vocabulary
    for a, b in ((first.test, again.test), (first.train, again.train)):
        np.testing.assert_array_equal(unbatch(a)[0], unbatch(b)[0])
    # the vocabulary can be kept and reused: the same ids from a vocabulary file
    from kexp.data.text import save_vocabulary

    path = save_vocabulary(first.vocabulary, tmp_path / "vocab.txt")
    reused = load(tiny_cfg(tiny_tfds, vocabulary_file=str(path)), 4, 5)
    assert reused.vocabulary == first.vocabulary
    np.testing.assert_array_equal(unbatch(reused.test)[0], unbatch(first.test)[0])


def test_tfds_text_errors(tiny_tfds, tmp_path):
    assert_error(r"data.text_features: 'body' is not a text feature of 'kexp_text_tiny' "
                 r"\(text features: text, title\)", tiny_cfg(tiny_tfds, text_features=["body"]))
    assert_error(r"data.label_feature: 'stars' is not a class label",
                 tiny_cfg(tiny_tfds, label_feature="stars"))
    assert_error(r"data.name: 'no_such_text_xyz' is not a TFDS dataset.*data=text_csv",
                 data_cfg("imdb_reviews", name="no_such_text_xyz", data_dir=str(tmp_path)))
    with tfds.testing.mock_data(num_examples=4):
        assert_error(r"data.name: 'mnist' is not a text-classification dataset.*source=tfds",
                     data_cfg("imdb_reviews", name="mnist"))
    assert_error(r"'kexp_text_tiny' is not an image-classification dataset.*tfds_text",
                 data_cfg("mnist", name="kexp_text_tiny", data_dir=str(tiny_tfds)))


def test_tfds_text_missing_data_fails_fast_offline(tmp_path):
    from kexp.data.sources.tfds import online

    start = time.monotonic()
    assert_error(r"data.name: 'imdb_reviews' is not in .* and data.download is false",
                 data_cfg("imdb_reviews", data_dir=str(tmp_path), download=False))
    assert time.monotonic() - start < 10
    if online():
        pytest.skip("this machine reaches the internet: download=true would really download")
    start = time.monotonic()
    assert_error(r"cannot reach the internet .*tfds build imdb_reviews.*data=text_csv",
                 data_cfg("imdb_reviews", data_dir=str(tmp_path), download=True))
    assert time.monotonic() - start < 10


# ---------------------------------------------------------------------------------- text_csv


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def labelled_rows(n: int = 30) -> str:
    """n rows over three string classes; each text names its class (and holds a comma)."""
    classes = ["spam", "ham", "eggs"]
    rows = [f'"About {classes[i % 3]}, number {i}.",{classes[i % 3]}' for i in range(n)]
    return "text,label\n" + "\n".join(rows) + "\n"


def test_csv_string_labels_sorted_and_held_out_test(tmp_path):
    path = write_csv(tmp_path / "d.csv", labelled_rows(30))
    bundle = load(data_cfg("text_csv", path=str(path), sequence_length=6), 4, 0)
    spec = bundle.spec
    assert spec.class_names == ["eggs", "ham", "spam"] and spec.num_classes == 3
    assert (spec.num_train, spec.num_val, spec.num_test) == (21, 3, 6)  # 20% test, 10% of rest
    assert spec.input_shape == (6,) and spec.vocab_size == len(bundle.vocabulary)
    for split in (bundle.train, bundle.val, bundle.test):
        x, y = unbatch(split)
        assert x.dtype == np.int32 and y.dtype == np.int32
        for ids, label in zip(x, y, strict=True):
            assert spec.class_names[label] in words(ids, bundle.vocabulary)
    assert sorted(unbatch(bundle.test)[1]) == [0, 0, 1, 1, 2, 2]  # stratified


def test_csv_subset_limits_every_split_and_the_vocabulary(tmp_path):
    path = write_csv(tmp_path / "d.csv", labelled_rows(60))
    bundle = load(data_cfg("text_csv", path=str(path), subset=5), 2, 0)
    spec = bundle.spec
    assert (spec.num_train, spec.num_val, spec.num_test) == (5, 5, 5)
    train_x, _ = unbatch(bundle.train)
    seen = {word for ids in train_x for word in words(ids, bundle.vocabulary)}
    assert seen == set(bundle.vocabulary[2:])  # adapted on exactly these five texts
    assert (unbatch(bundle.test)[0] == 1).any()  # other rows' numbers are out of vocabulary


def test_csv_test_file_integer_labels_tabs_and_quoting(tmp_path):
    train = write_csv(tmp_path / "train.tsv", "\ufeffid\tlabel\ttext\n" + "".join(
        f'{i}\t{i % 2 + 1}\t"Line one\nand {"good" if i % 2 else "bad"} two"\n'
        for i in range(20)))
    test = write_csv(tmp_path / "test.tsv", "id\tlabel\ttext\n1\t2\tgood\n2\t1\tbad\n3\t2\tnew\n")
    cfg = data_cfg("text_csv", path=str(train), test_path=str(test), delimiter="tab")
    bundle = load(cfg, 4, 0)
    assert bundle.spec.class_names == ["1", "2"]  # labels 1..2 become ids 0..1
    assert bundle.spec.num_test == 3 and bundle.spec.num_train + bundle.spec.num_val == 20
    x, y = unbatch(bundle.test)
    got = sorted((words(ids, bundle.vocabulary), int(c)) for ids, c in zip(x, y, strict=True))
    assert got == [(["[UNK]"], 1), (["bad"], 0), (["good"], 1)]
    assert {"line", "one", "and", "two"} <= set(bundle.vocabulary)  # quoted newlines kept


def test_csv_standardization(tmp_path):
    rows = ['"Great MOVIE!<br /><br />Élan, don\'t",a', '"so-so... #39;ok&amp;fine",b'] * 5
    path = write_csv(tmp_path / "s.csv", "text,label\n" + "\n".join(rows) + "\n")
    vocabulary = load(data_cfg("text_csv", path=str(path), max_tokens=None), 4, 0).vocabulary
    assert set(vocabulary[2:]) == {"great", "movie", "élan", "dont", "soso", "ok", "fine"}
    raw = load(data_cfg("text_csv", path=str(path), standardize="none"), 4, 0).vocabulary
    assert "MOVIE!<br" in raw


CSV = "text,label\nnice film,pos\nbad film,neg\nfine,pos\n"


@pytest.mark.parametrize(
    ("content", "overrides", "match"),
    [
        (CSV, {"text_column": "review"},
         r"data.text_column: 'review' is not a column of '.*d.csv' \(columns: 'text', 'label'\)"),
        (CSV, {"label_column": "y"}, r"data.label_column: 'y' is not a column"),
        ("text;label\na;b\n", {}, r"data.text_column: .*is data.delimiter=',' right\?"),
        ("text,label\nok,pos\n  ,neg\n", {}, r"data.path: .* line 3: empty text in column"),
        ("text,label\nok,pos\nfine,\n", {}, r"data.path: .* line 3: empty label in column"),
        ("text,label\nok,pos\nfine\n", {}, r"line 3 has 1 field\(s\) but the header has 2"),
        ("text,label\nok,pos\nfine,pos\n", {},
         r"data.label_column: .* has only 1 class \('pos'\) in column 'label'"),
        ("text,label\n", {}, r"data.path: '.*d.csv' has a header but no rows"),
        ("", {}, r"data.path: '.*d.csv' is empty; expected a header row"),
        ("text,label\n" + "!!!,pos\n...,neg\n?,pos\n" * 3, {"test_fraction": 0.25},
         r"data: the \d+ training texts have no words left after data.standardize"),
        (CSV, {"delimiter": "ab"}, r"data.delimiter: 'ab' must be one character"),
        (CSV, {"max_tokens": 2}, r"data.max_tokens: 2 must be an integer >= 3"),
        (CSV, {"sequence_length": 0}, r"data.sequence_length: 0 must be a positive integer"),
        (CSV, {"standardize": "upper"}, r"data.standardize: 'upper' is not one of lower_and"),
        (CSV, {"test_fraction": 0}, r"data.test_fraction: 0 must be"),
        (CSV, {"test_path": "/no/such/test.csv"}, r"data.test_path: '/no/such/test.csv' does "),
        (CSV, {"vocabulary_file": "/no/such/vocab.txt"}, r"data.vocabulary_file: .* does not"),
    ],
)
def test_csv_bad_input_names_the_key(tmp_path, content, overrides, match):
    path = write_csv(tmp_path / "d.csv", content)
    assert_error(match, data_cfg("text_csv", path=str(path), **overrides))


def test_csv_bad_files(tmp_path):
    assert_error(r"data.path is required", data_cfg("text_csv"))
    missing = tmp_path / "nope.csv"
    assert_error(rf"data.path: '{re.escape(str(missing))}' does not exist",
                 data_cfg("text_csv", path=str(missing)))
    latin = tmp_path / "latin.csv"
    latin.write_bytes("text,label\ncaf\u00e9,a\nthé,b\n".encode("latin-1"))
    assert_error(r"data.path: .* is not UTF-8 text .*save it as UTF-8",
                 data_cfg("text_csv", path=str(latin)))
    train = write_csv(tmp_path / "train.csv", CSV)
    test = write_csv(tmp_path / "test.csv", "text,label\nodd,zzz\n")
    assert_error(r"data.test_path: .* has label 'zzz' in column 'label' that data.path lacks "
                 r"\(classes: neg, pos\)",
                 data_cfg("text_csv", path=str(train), test_path=str(test)))
    vocab = tmp_path / "vocab.txt"
    for text, match in (("", r"is empty"), ("film\nnice\nfilm\n", r"line 3: 'film' repeats line 1"),
                        ("two words\n", r"line 1: 'two words' is not one word")):
        vocab.write_text(text)
        assert_error(rf"data.vocabulary_file: .*{match}",
                     data_cfg("text_csv", path=str(train), vocabulary_file=str(vocab)))
