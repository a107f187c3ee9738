"""model=han (Yang et al., 2016): documents split into sentences (data.sentences), the
hierarchical attention network, and its attention highlighted on the misclassified page.

Kept small (a tiny generated document set, one short training run): the whole file runs in
well under a minute on 2 cores."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from omegaconf import OmegaConf

from kexp.config import validate
from kexp.data import load
from kexp.data.text import split_sentences
from kexp.errors import KexpError
from kexp.models import build
from kexp.models.han import attention_weights, han
from tests.conftest import compose_train
from tests.test_models import model_cfg

REPO = Path(__file__).resolve().parents[1]
FILLER = ("the film has a long scene with some actors and music in an old town near the sea "
          "where people walk talk wait look around then leave again").split()
KEYWORDS = {"pos": ("wonderful", "brilliant", "superb"), "neg": ("awful", "dreadful", "boring")}


def data_cfg(**overrides):
    return OmegaConf.merge(OmegaConf.load(REPO / "conf" / "data" / "text_csv.yaml"), overrides)


def write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    import csv

    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


def keyword_documents(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """Documents of 3-5 filler sentences, each with a random positive or negative word; one
    sentence (at a random place) starts with the cue "overall", and its word decides the label.
    (Without the distractors a label carried by one word anywhere lets the sentence GRU's end
    states carry it too, and the sentence attention learns no preference.)"""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        label = ("pos", "neg")[i % 2]
        count = int(rng.integers(3, 6))
        k = int(rng.integers(count))
        sentences = []
        for j in range(count):
            words = list(rng.choice(FILLER, size=int(rng.integers(3, 6))))
            polarity = label if j == k else ("pos", "neg")[int(rng.integers(2))]
            words.insert(int(rng.integers(len(words) + 1)), str(rng.choice(KEYWORDS[polarity])))
            sentences.append(" ".join(["overall", *words] if j == k else words))
        rows.append((". ".join(s.capitalize() for s in sentences) + ".", label))
    return rows


# ------------------------------------------------------------------ documents of sentences


def test_sentence_splitting_rule():
    texts = ["Great movie. Loved it!<br /><br />The end? Yes...  \"Really.\" It got 3.5 stars\n"
             "bye", "one sentence, no end", "", "A<br>B<BR/>C\r\nD"]
    got = [[s.decode() for s in row] for row in split_sentences(tf.constant(texts)).to_list()]
    assert got == [["Great movie.", "Loved it!", "", "The end?", "Yes...", "\"Really.\"",
                    "It got 3.5 stars", "bye"], ["one sentence, no end"], [""],
                   ["A", "B", "C", "D"]]


def test_documents_become_sentences_of_ids_and_flat_data_do_not_change(tmp_path):
    rows = [("Good film. Bad end!<br />More words here today?", "pos"),
            ("One two three four five six. Seven.", "neg"),
            ("Hi there. ... !!! Last words.", "neg")] * 6  # sentences of punctuation only
    path = write_csv(tmp_path / "docs.csv", rows)
    flat = load(data_cfg(path=str(path), sequence_length=12), 4, 0)
    docs = load(data_cfg(path=str(path), sequence_length=12, sentences=2, sentence_length=4),
                4, 0)
    assert flat.spec.input_shape == (12,) and docs.spec.input_shape == (2, 4)
    assert docs.vocabulary == flat.vocabulary  # one vocabulary, whichever layout
    x_flat = np.concatenate([x for x, _ in flat.train.as_numpy_iterator()])
    x_docs = np.concatenate([x for x, _ in docs.train.as_numpy_iterator()])
    assert x_flat.shape[1:] == (12,) and x_docs.shape[1:] == (2, 4)
    vocab = docs.vocabulary
    seen = {tuple(" ".join(vocab[i] for i in s if i) for s in doc) for doc in x_docs}
    # the first 2 sentences, each cut to 4 words ("more words here today" is the third)
    assert seen == {("good film", "bad end"), ("one two three four", "seven"),
                    ("hi there", "last words")}  # sentences with no word left are dropped
    for doc in x_docs:  # padding at each sentence's end
        for sentence in doc:
            nonzero = np.flatnonzero(sentence)
            assert len(nonzero) == 0 or nonzero[-1] == len(nonzero) - 1


def test_model_han_sets_the_sentences_and_other_models_keep_flat_ids():
    cfg = compose_train(["model=han", "data=imdb_reviews"])
    assert cfg.data.sentences == 16 and cfg.data.sentence_length == 32
    assert compose_train(["model=lstm", "data=imdb_reviews"]).data.sentences is None
    assert compose_train(["model=han", "data=imdb_reviews", "data.sentences=4"]
                         ).data.sentences == 4


def test_bad_sentences_are_one_line_errors(tmp_path):
    for bad in ("data.sentences=0", "model.sentences=0"):
        with pytest.raises(KexpError, match=re.escape(bad.split("=")[0])) as info:
            validate(compose_train(["model=han", "data=imdb_reviews", bad]))
        assert "\n" not in str(info.value)
    path = write_csv(tmp_path / "docs.csv", [("a b. c", "x"), ("d e", "y")] * 6)
    with pytest.raises(KexpError, match=r"^data.sentences: 0 must be") as info:
        load(data_cfg(path=str(path), sentences=0), 4, 0)
    # model=han on flat ids, a flat-text model on documents
    with pytest.raises(KexpError, match=r"model=han reads documents .*data.sentences") as info:
        build(model_cfg("han"), (24,), 2, vocab_size=50)
    assert "\n" not in str(info.value)
    with pytest.raises(KexpError, match=r"model=rnn reads token ids .*data.sentences=null"):
        build(model_cfg("lstm"), (4, 6), 2, vocab_size=50)


# ------------------------------------------------------------------ the model


def test_padding_words_and_sentences_get_no_attention_and_change_nothing():
    tf.keras.utils.set_random_seed(0)
    model = han((None, None), 40, units=8, embedding_dim=8, attention_units=8, dropout=0.0)
    rng = np.random.default_rng(0)
    short = np.zeros((3, 2, 5), "int32")
    short[0, 0], short[0, 1, :3] = rng.integers(2, 40, 5), rng.integers(2, 40, 3)
    short[1, 0, :2] = rng.integers(2, 40, 2)  # one sentence; [2] is an empty document
    padded = np.zeros((3, 4, 9), "int32")  # the same documents, more padding words and sentences
    padded[:, :2, :5] = short
    out_short, out_padded = model.predict(short, verbose=0), model.predict(padded, verbose=0)
    np.testing.assert_allclose(out_short, out_padded, atol=1e-5)
    words, sentences = attention_weights(model, padded)
    assert np.all(words[padded == 0] == 0) and np.all(sentences[:, 2:] == 0)
    assert sentences[1, 1] == 0 and np.all(sentences[2] == 0)  # padding sentences, empty doc
    np.testing.assert_allclose(sentences[:2].sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(words[0, :2].sum(axis=-1), 1.0, atol=1e-5)


def test_han_learns_the_keyword_sentence_and_highlights_it(tmp_path):
    """Through the recipe as `python -m kexp model=han data=text_csv data.path=...` runs it: the
    label hangs on one sentence of each document (keyword_documents); HAN learns it well
    above chance (0.5), its sentence attention weighs that sentence most in new documents,
    and the misclassified page highlights the words and sentences."""
    from kexp.analysis import Predictions, write_misclassified_text
    from kexp.models import load_model
    from kexp.recipe import train

    rows = keyword_documents(480, seed=0)
    path = write_csv(tmp_path / "docs.csv", rows)
    cfg = compose_train(["model=han", "data=text_csv", f"data.path={path}", "data.sentences=6",
                         "data.sentence_length=8", "model.units=16", "model.embedding_dim=16",
                         "model.attention_units=16", "model.dropout=0.0", "trainer.epochs=6",
                         "trainer.batch_size=32", "optimizer.lr=0.01", "trainer.verbose=0",
                         "callbacks=none", "logger=none", f"paths.log_dir={tmp_path}"])
    metrics = train(cfg)
    assert metrics["test_accuracy"] >= 0.8, metrics

    (saved,) = (tmp_path / "runs").glob("*/model.keras")
    model = load_model(saved)  # the custom layers save and load (safe mode)
    test_rows = keyword_documents(64, seed=1)
    new = write_csv(tmp_path / "new.csv", test_rows)
    vocabulary = [""] + ["[UNK]"] + (saved.parent / "vocabulary.txt").read_text().split()
    bundle = load(data_cfg(path=str(new), vocabulary_file=str(saved.parent / "vocabulary.txt"),
                           sentences=6, sentence_length=8, test_fraction=0.5), 64, 0)
    assert bundle.vocabulary == vocabulary
    docs = np.concatenate([x for x, _ in bundle.test.as_numpy_iterator()])
    words, sentences = attention_weights(model, docs)
    keyword_sentence = (docs == vocabulary.index("overall")).any(axis=-1)  # (n, sentences)
    assert np.all(keyword_sentence.sum(axis=1) == 1)
    hits = keyword_sentence[np.arange(len(docs)), sentences.argmax(axis=1)]
    assert hits.mean() >= 0.8, hits.mean()  # 1 / 3-5 sentences by chance

    n = 3
    found = Predictions(np.zeros(n, int), np.ones(n, int), np.full(n, 0.9, "float32"),
                        np.arange(n), docs[:n])
    page, _ = write_misclassified_text(found, ["neg", "pos"], vocabulary, tmp_path, model)
    text = page.read_text()
    assert text.count('class="sentence"') >= n and 'class="word"' in text
    assert "background:rgba(220,40,40,1.00)" in text  # the heaviest word at full colour
    plain, _ = write_misclassified_text(found, ["neg", "pos"], vocabulary, tmp_path)
    assert 'class="word"' not in plain.read_text()  # no model: plain text, as for flat ids
    assert json.loads((saved.parent / "metrics.json").read_text())["test_accuracy"] >= 0.8


def test_model_han_data_imdb_reviews_runs_and_evaluates_through_the_mock(tmp_path):
    """`python -m kexp model=han data=imdb_reviews` (debug=fast, a narrow model) on TFDS's mock
    reviews: documents of data.sentences=16 sentences, the highlighted page, and kexp.eval
    rebuilding the same documents from the run's config.yaml."""
    import tensorflow_datasets as tfds

    from kexp.models import load_model
    from kexp.recipe import evaluate, train

    cfg = compose_train(["model=han", "data=imdb_reviews", "debug=fast", "logger=none",
                         "model.units=8", "model.embedding_dim=8", "model.attention_units=8",
                         "data.sentence_length=8", f"paths.log_dir={tmp_path}"])
    with tfds.testing.mock_data(num_examples=64):  # random words, real feature layout
        metrics = train(cfg)
        (saved,) = (tmp_path / "runs").glob("*/model.keras")
        again = evaluate(saved.parent)
    assert load_model(saved).input_shape == (None, 16, 8)
    assert again["test_accuracy"] == pytest.approx(metrics["test_accuracy"])
    page = saved.parent / "misclassified.html"
    if metrics["test_accuracy"] < 1:
        assert 'class="sentence"' in page.read_text()
