"""The test split's error analysis (kexp.analysis): numbers against hand-computed values, and
the files for image and text data from small hand-made bundles and models whose predictions
are known in advance."""

from __future__ import annotations

import csv
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from kexp import analysis
from kexp.data import DataBundle, DataSpec

# 6 examples of 4 classes (class 3 has none): counts by hand below
Y_TRUE = np.array([0, 0, 0, 1, 1, 2])
Y_PRED = np.array([0, 0, 1, 1, 2, 2])


def bundle(x: np.ndarray, y: np.ndarray, names: list[str],
           vocabulary: list[str] | None = None) -> DataBundle:
    """Every split the same small batched dataset, as kexp.data.load would hand it over."""
    ds = tf.data.Dataset.from_tensor_slices((x, y.astype(np.int32))).batch(4)
    spec = DataSpec(name="hand", input_shape=x.shape[1:], num_classes=len(names),
                    class_names=names, num_train=len(y), num_val=len(y), num_test=len(y),
                    vocab_size=len(vocabulary) if vocabulary else None)
    return DataBundle(train=ds, val=ds, test=ds, spec=spec, vocabulary=vocabulary)


def one_hot_images(y: np.ndarray, k: int, channels: int) -> np.ndarray:
    """(N, 1, k, channels) images: pixel (0, label) of channel 0 lit, scaled like a
    standardized pipeline would leave them (negative background)."""
    x = np.full((len(y), 1, k, channels), -0.5, dtype=np.float32)
    x[np.arange(len(y)), 0, y, 0] = 2.0
    return x


def image_classifier(k: int, channels: int, answer: list[int]) -> keras.Model:
    """Predicts class answer[c] for an image whose lit pixel is c, with certainty."""
    model = keras.Sequential([keras.Input((1, k, channels)), keras.layers.Flatten(),
                              keras.layers.Dense(k, activation="softmax")])
    kernel = np.zeros((k * channels, k), dtype=np.float32)
    for c, predicted in enumerate(answer):
        kernel[c * channels, predicted] = 10.0
    model.set_weights([kernel, np.zeros(k, dtype=np.float32)])
    return model


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_confusion_and_scores_match_hand_computed_values():
    counts = analysis.confusion(Y_TRUE, Y_PRED, 4)
    assert counts.tolist() == [[2, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    rates = analysis.row_normalized(counts)
    assert rates.sum(axis=1) == pytest.approx([1, 1, 1, 0])  # a class never seen stays 0
    assert rates[0] == pytest.approx([2 / 3, 1 / 3, 0, 0])
    scores = analysis.per_class_scores(counts)
    assert scores.precision == pytest.approx([1.0, 0.5, 0.5, 0.0])  # class 3: 0/0 -> 0
    assert scores.recall == pytest.approx([2 / 3, 0.5, 1.0, 0.0])
    assert scores.f1 == pytest.approx([0.8, 0.5, 2 / 3, 0.0])
    assert scores.support.tolist() == [3, 2, 1, 0]
    assert scores.macro()["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 4)
    p, r, f, s = precision_recall_fscore_support(Y_TRUE, Y_PRED, labels=range(4),
                                                 zero_division=0)
    assert (scores.precision, scores.recall, scores.f1) == (pytest.approx(p), pytest.approx(r),
                                                            pytest.approx(f))


def test_scores_from_counts_equal_scikit_learn_on_the_labels():
    """Counts of a larger random split: the weighted cells give the per-label numbers; an
    empty split is all zeros (scikit-learn itself refuses one)."""
    rng = np.random.default_rng(0)
    y_true, y_pred = rng.integers(0, 7, 500), rng.integers(0, 6, 500)  # class 6 never predicted
    counts = analysis.confusion(y_true, y_pred, 8)  # class 7 absent: a row and column of zeros
    assert counts.tolist() == confusion_matrix(y_true, y_pred, labels=range(8)).tolist()
    scores = analysis.per_class_scores(counts)
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=range(8),
                                                 zero_division=0)
    assert scores.precision == pytest.approx(p) and scores.recall == pytest.approx(r)
    assert scores.f1 == pytest.approx(f) and scores.support.tolist() == s.tolist()
    empty = analysis.confusion(np.array([], int), np.array([], int), 3)
    assert empty.tolist() == [[0] * 3] * 3
    assert analysis.per_class_scores(empty).f1.tolist() == [0.0] * 3


def test_class_names_become_valid_mlflow_metric_keys():
    names = ["a/b", "a_b", "c:d", " ", "café au lait", "x" * 300]
    metrics = analysis.class_metrics(analysis.per_class_scores(np.eye(6, dtype=int)), names)
    assert list(metrics) == ["f1.a_b", "f1.a_b_1", "f1.c_d", "f1.3", "f1.café au lait",
                             "f1." + "x" * 200]
    assert set(metrics.values()) == {1.0}
    many = [str(i) for i in range(analysis.PER_CLASS_METRICS_MAX + 1)]
    assert analysis.class_metrics(analysis.per_class_scores(np.eye(len(many))), many) == {}


@pytest.mark.parametrize("channels", [1, 3])
def test_images_all_wrong_write_every_file_and_a_bounded_grid(tmp_path, channels):
    k, names = 3, ["cat", "dog", "bird & co"]
    y = np.arange(30) % k
    data = bundle(one_hot_images(y, k, channels), y, names)
    model = image_classifier(k, channels, answer=[1, 2, 0])  # every example wrong
    paths, metrics = analysis.analyze(model, data, tmp_path)
    written = {p.name for p in paths}
    assert {"confusion_matrix.png", "per_class.csv", "misclassified.png"} <= written
    assert all(p.is_file() and p.stat().st_size > 0 for p in paths)
    assert metrics == {"macro_precision": 0.0, "macro_recall": 0.0, "macro_f1": 0.0,
                       "f1.cat": 0.0, "f1.dog": 0.0, "f1.bird _ co": 0.0}
    rows = read_csv(tmp_path / "per_class.csv")
    assert [r["class"] for r in rows] == [*names, "macro avg"]
    assert [r["support"] for r in rows] == ["10", "10", "10", "30"]
    found = analysis.predict(model, data)
    assert found.wrong_index.tolist() == list(range(analysis.MAX_EXAMPLES))  # the first 25
    assert found.wrong_inputs.shape == (analysis.MAX_EXAMPLES, 1, k, channels)
    counts = analysis.confusion(found.y_true, found.y_pred, k)
    assert counts.tolist() == [[0, 10, 0], [0, 0, 10], [10, 0, 0]]


def test_images_all_right_write_no_grid(tmp_path):
    y = np.arange(12) % 3
    data = bundle(one_hot_images(y, 3, 1), y, ["a", "b", "c"])
    paths, metrics = analysis.analyze(image_classifier(3, 1, answer=[0, 1, 2]), data, tmp_path)
    assert not (tmp_path / "misclassified.png").exists()
    assert {p.name for p in paths} >= {"confusion_matrix.png", "per_class.csv"}
    assert metrics["macro_f1"] == metrics["f1.a"] == 1.0
    assert read_csv(tmp_path / "per_class.csv")[-1] == {
        "class": "macro avg", "precision": "1.0000", "recall": "1.0000", "f1": "1.0000",
        "support": "12"}


def test_displayable_stretches_each_image_to_0_1():
    rgb = np.linspace(-3, 5, 2 * 2 * 3, dtype=np.float32).reshape(2, 2, 3)
    shown = analysis.displayable(rgb)
    assert shown.shape == (2, 2, 3) and shown.min() == 0.0 and shown.max() == 1.0
    grey = analysis.displayable(np.array([[[0.2], [0.4]]], dtype=np.float32))
    assert grey.shape == (1, 2) and grey.ravel() == pytest.approx([0.0, 1.0])
    assert analysis.displayable(np.ones((2, 2, 1))).tolist() == [[0, 0], [0, 0]]  # flat: black


def test_text_misclassified_are_decoded_and_escaped(tmp_path):
    vocabulary = ["", "[UNK]", "good", "<b>bad</b>", "a&b"]
    # token 2 votes for class 0, tokens 3 and 4 for class 1; 0 pads
    embedding = np.array([[0, 0], [0, 0], [5, 0], [0, 5], [0, 5]], dtype=np.float32)
    inputs = keras.Input((4,), dtype="int32")
    pooled = keras.layers.GlobalAveragePooling1D()(
        keras.layers.Embedding(5, 2, embeddings_initializer=keras.initializers.Constant(
            embedding))(inputs))
    model = keras.Model(inputs, keras.layers.Softmax()(pooled))
    x = np.array([[2, 2, 0, 0], [3, 4, 0, 0], [3, 1, 0, 0], [2, 0, 0, 0]], dtype=np.int32)
    y = np.array([0, 0, 1, 1])  # the 2nd and 4th are predicted wrong
    names = ["pos & happy", "neg"]
    paths, metrics = analysis.analyze(model, bundle(x, y, names, vocabulary), tmp_path)
    assert {"misclassified.html", "misclassified.csv"} <= {p.name for p in paths}
    assert not (tmp_path / "misclassified.png").exists()
    rows = read_csv(tmp_path / "misclassified.csv")
    assert [(r["index"], r["true"], r["predicted"], r["text"]) for r in rows] == [
        ("1", "pos & happy", "neg", "<b>bad</b> a&b"), ("3", "neg", "pos & happy", "good")]
    page = (tmp_path / "misclassified.html").read_text(encoding="utf-8")
    assert "&lt;b&gt;bad&lt;/b&gt; a&amp;b" in page and "pos &amp; happy" in page
    assert "<b>bad" not in page
    assert metrics["macro_f1"] == pytest.approx(0.5)  # one right of two in each class


def test_model_diagram_never_fails_the_run(tmp_path, monkeypatch, capsys):
    model = image_classifier(2, 1, answer=[0, 1])
    if not analysis.graphviz_available():  # here: skipped quietly, without Keras' advice
        assert analysis.plot_model(model, tmp_path / "model.png") is None
        assert capsys.readouterr().out == ""

    def broken(*args, **kwargs):
        raise OSError("dot crashed")

    monkeypatch.setattr(analysis, "graphviz_available", lambda: True)
    monkeypatch.setattr(keras.utils, "plot_model", broken)
    assert analysis.plot_model(model, tmp_path / "model.png") is None
    assert not (tmp_path / "model.png").exists()
