"""What a trained classifier gets wrong on the test split, as files in the run directory.

`analyze(model, data, out)` predicts the test split once and writes the confusion matrix,
per-class precision/recall/F1, the first misclassified examples (a picture grid for images, an
HTML page and a CSV for text) and, where pydot and Graphviz are installed, a diagram of the
model. It returns the paths and the metrics to log; it does not talk to MLflow, so `kexp.recipe`
decides what is logged and where.
"""

from __future__ import annotations

import csv
import html
import importlib.util
import logging
import math
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.special
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from kexp.data import DataBundle
from kexp.plotting import pyplot

log = logging.getLogger("kexp")

CONFUSION_FILE = "confusion_matrix.png"
PER_CLASS_FILE = "per_class.csv"
MISCLASSIFIED_IMAGES_FILE = "misclassified.png"
MISCLASSIFIED_HTML_FILE = "misclassified.html"
MISCLASSIFIED_CSV_FILE = "misclassified.csv"
MODEL_PLOT_FILE = "model.png"

MAX_EXAMPLES = 25  # misclassified examples kept: a 5x5 grid, a page one reads to the end
CELL_TEXT_MAX_CLASSES = 20  # beyond this the numbers in the cells are unreadable
TICK_LABEL_MAX_CLASSES = 100  # beyond this class names overlap at any legible font size
PER_CLASS_METRICS_MAX = 100  # f1.<class> metrics beyond this swamp MLflow's metric list
_NAME_CHARS = 24  # class names are cut to this on the pictures (the CSV keeps them whole)


@dataclass(frozen=True)
class Scores:
    """Per-class precision, recall, F1 and support (arrays of length k); macro = plain mean."""

    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray

    def macro(self) -> dict[str, float]:
        return {"macro_precision": float(self.precision.mean()),
                "macro_recall": float(self.recall.mean()),
                "macro_f1": float(self.f1.mean())}


@dataclass(frozen=True)
class Predictions:
    """The test split's labels and predictions, plus the first misclassified examples' inputs."""

    y_true: np.ndarray
    y_pred: np.ndarray
    confidence: np.ndarray  # the predicted class's probability
    wrong_index: np.ndarray  # positions in the test split of the kept misclassified examples
    wrong_inputs: np.ndarray  # their model inputs (images or token ids)


def analyze(model: Any, data: DataBundle, out: Path, found: Predictions | None = None
            ) -> tuple[list[Path], dict[str, float]]:
    """Write the test split's error analysis into `out`; return the files and the metrics.

    Metrics: macro_precision, macro_recall, macro_f1 and, up to PER_CLASS_METRICS_MAX classes,
    f1.<class name>. `found`: the test split's predictions when the caller has them already
    (else one pass here). `data.test` must be a plain tf.data.Dataset (not a multi-worker one)."""
    names = class_names(data)
    found = found or predict(model, data)
    counts = confusion(found.y_true, found.y_pred, len(names))
    scores = per_class_scores(counts)
    paths = [plot_confusion(counts, names, out / CONFUSION_FILE),
             write_per_class(scores, names, out / PER_CLASS_FILE)]
    if len(found.wrong_index):
        if data.vocabulary is not None:
            paths += write_misclassified_text(found, names, data.vocabulary, out, model)
        elif found.wrong_inputs.ndim == 4:  # (N, H, W, C) images
            paths.append(plot_misclassified_images(found, names,
                                                   out / MISCLASSIFIED_IMAGES_FILE))
    diagram = plot_model(model, out / MODEL_PLOT_FILE)
    if diagram is not None:
        paths.append(diagram)
    return paths, {**scores.macro(), **class_metrics(scores, names)}


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray,
                               bins: int = 15) -> float:
    """ECE (Guo et al. 2017): the predictions binned by confidence into `bins` equal-width
    bins of (0, 1]; the mean over examples of |accuracy - mean confidence| of their bin.
    Written here because no installed library has it (a dozen lines of numpy)."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    if not len(confidence):
        return float("nan")
    which = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    total = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            total += members.sum() * abs(correct[members].mean() - confidence[members].mean())
    return float(total / len(confidence))


def class_names(data: DataBundle) -> list[str]:
    names = [str(n) for n in data.spec.class_names]
    if len(names) != data.spec.num_classes:  # a source without names: the ids stand in
        names = [str(i) for i in range(data.spec.num_classes)]
    return names


def predict(model: Any, data: DataBundle, keep: int = MAX_EXAMPLES,
            softmax: bool = False) -> Predictions:
    """One prediction pass (Keras' own loop: the run's strategy, XLA and precision; `softmax`
    turns a linear head's class scores into probabilities), then one
    pass over the test split for its labels and the first `keep` misclassified inputs. Both see
    the same examples in the same order: the test split is never shuffled."""
    probs = np.asarray(model.predict(data.test, verbose=0), dtype=np.float32)
    if softmax:
        probs = scipy.special.softmax(probs, axis=-1)
    y_pred, confidence = probs.argmax(axis=-1), probs.max(axis=-1)
    labels: list[np.ndarray] = []
    wrong_index: list[int] = []
    wrong_inputs: list[np.ndarray] = []
    offset = 0
    for x, y in data.test:
        y = np.asarray(y).reshape(-1)
        labels.append(y)
        if len(wrong_index) < keep:
            wrong = np.flatnonzero(y != y_pred[offset:offset + len(y)])[:keep - len(wrong_index)]
            if len(wrong):
                wrong_inputs.extend(np.asarray(x)[wrong])
                wrong_index.extend(int(i) + offset for i in wrong)
        offset += len(y)
    if offset != len(y_pred):
        raise RuntimeError(f"the test split gave {len(y_pred)} predictions for {offset} labels")
    return Predictions(np.concatenate(labels).astype(np.int64), y_pred.astype(np.int64),
                       confidence, np.asarray(wrong_index, dtype=np.int64),
                       np.asarray(wrong_inputs))


def confusion(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> np.ndarray:
    """Counts: row = true class, column = predicted class, shape (k, k): scikit-learn's
    confusion_matrix over labels 0..k-1, so a class without examples keeps its row."""
    if not len(y_true):  # scikit-learn refuses an empty split; its matrix is all zeros
        return np.zeros((k, k), dtype=np.int64)
    return confusion_matrix(y_true, y_pred, labels=range(k)).astype(np.int64)


def row_normalized(counts: np.ndarray) -> np.ndarray:
    """Each true class's share predicted as each class (recall on the diagonal); a class with
    no test examples stays a row of zeros."""
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)


def per_class_scores(counts: np.ndarray) -> Scores:
    """Precision, recall and F1 of each class from confusion counts; 0/0 is 0.0.

    scikit-learn's precision_recall_fscore_support, fed each non-empty cell of the matrix as
    one (true, predicted) pair weighted by its count: the same numbers as from the labels,
    without a second pass over them."""
    counts = np.asarray(counts)
    k, support = len(counts), counts.sum(axis=1)
    true, predicted = np.nonzero(counts)
    if not len(true):  # no examples: scikit-learn refuses an empty input, every score is 0
        return Scores(np.zeros(k), np.zeros(k), np.zeros(k), support)
    precision, recall, f1, _ = precision_recall_fscore_support(
        true, predicted, labels=range(k), sample_weight=counts[true, predicted],
        zero_division=0)
    return Scores(precision, recall, f1, support)


def class_metrics(scores: Scores, names: list[str]) -> dict[str, float]:
    """f1.<name> per class, names made valid MLflow metric keys; none above
    PER_CLASS_METRICS_MAX classes."""
    if len(names) > PER_CLASS_METRICS_MAX:
        return {}
    metrics: dict[str, float] = {}
    for i, name in enumerate(names):
        key = f"f1.{metric_name(name) or i}"
        if key in metrics:  # two names alike once cleaned: the class id tells them apart
            key = f"{key}_{i}"
        metrics[key] = float(scores.f1[i])
    return metrics


def metric_name(name: str) -> str:
    """`name` as part of an MLflow metric key: word characters, `-`, `.` and spaces, the rest
    `_`. Slashes go too: MLflow rejects keys a path normalization would change (`a//b`)."""
    return re.sub(r"[^\w.\- ]", "_", name).strip()[:200]


def write_per_class(scores: Scores, names: list[str], path: Path) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["class", "precision", "recall", "f1", "support"])
        for i, name in enumerate(names):
            writer.writerow([name, f"{scores.precision[i]:.4f}", f"{scores.recall[i]:.4f}",
                             f"{scores.f1[i]:.4f}", int(scores.support[i])])
        macro = scores.macro()
        writer.writerow(["macro avg", f"{macro['macro_precision']:.4f}",
                         f"{macro['macro_recall']:.4f}", f"{macro['macro_f1']:.4f}",
                         int(scores.support.sum())])
    return path


def _short(name: str) -> str:
    return name if len(name) <= _NAME_CHARS else name[:_NAME_CHARS - 1] + "…"


def plot_confusion(counts: np.ndarray, names: list[str], path: Path) -> Path:
    """The row-normalized matrix: cell values up to CELL_TEXT_MAX_CLASSES classes, class names
    on the axes up to TICK_LABEL_MAX_CLASSES (ever smaller), then colours only."""
    plt = pyplot()
    k = len(names)
    rates = row_normalized(counts)
    side = min(4.0 + 0.35 * k, 16.0)  # 10 classes: 7.5 in; 35 and more: 16 in
    fig, ax = plt.subplots(figsize=(side + 1.0, side))
    image = ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    if k <= TICK_LABEL_MAX_CLASSES:
        font = min(9, max(6, round(11 - k / 20)))  # 40 classes: 9 pt; 100: 6 pt, a row 10 pt high
        labels = [_short(n) for n in names]
        ax.set_xticks(range(k), labels=labels, rotation=90, fontsize=font)
        ax.set_yticks(range(k), labels=labels, fontsize=font)
    if k <= CELL_TEXT_MAX_CLASSES:
        for (i, j), rate in np.ndenumerate(rates):
            if counts[i, j]:
                ax.text(j, i, f"{rate:.2f}", ha="center", va="center", fontsize=8,
                        color="white" if rate > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"confusion matrix, rows normalized ({int(counts.sum())} test examples)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def displayable(image: np.ndarray) -> np.ndarray:
    """An (H, W, C) model input as a picture in 0..1: RGB for 3 channels, else the first channel
    as grey; stretched per image, as the pipeline may have scaled or standardized it."""
    pixels = image.astype(np.float32)
    pixels = pixels if pixels.shape[-1] == 3 else pixels[..., 0]
    low, high = float(pixels.min()), float(pixels.max())
    return (pixels - low) / (high - low) if high > low else np.zeros_like(pixels)


def plot_misclassified_images(found: Predictions, names: list[str], path: Path) -> Path:
    plt = pyplot()
    n = len(found.wrong_index)
    cols = min(5, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.0 * cols, 2.2 * rows + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, i in zip(axes.flat, found.wrong_inputs, found.wrong_index, strict=False):
        picture = displayable(image)
        ax.imshow(picture, cmap="gray" if picture.ndim == 2 else None, vmin=0.0, vmax=1.0,
                  interpolation="nearest")
        ax.set_title(f"{_short(names[found.y_true[i]])} / {_short(names[found.y_pred[i]])}",
                     fontsize=8)
    fig.suptitle("misclassified test examples: true / predicted", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def decode(ids: np.ndarray, vocabulary: list[str]) -> str:
    """Token ids back to the words the model read (padding id 0 dropped)."""
    return " ".join(vocabulary[i] if i < len(vocabulary) else "[UNK]"
                    for i in np.asarray(ids).reshape(-1).tolist() if i != 0)


def write_misclassified_text(found: Predictions, names: list[str], vocabulary: list[str],
                             out: Path, model: Any = None) -> list[Path]:
    """misclassified.csv and .html; for a model with HAN attention layers (model=han) the
    page's texts highlight the words and sentences its attention weighed most."""
    rows = [(int(i), names[found.y_true[i]], names[found.y_pred[i]],
             f"{found.confidence[i]:.3f}", decode(ids, vocabulary))
            for i, ids in zip(found.wrong_index, found.wrong_inputs, strict=True)]
    header = ("index", "true", "predicted", "confidence", "text")
    csv_path = out / MISCLASSIFIED_CSV_FILE
    with csv_path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    shown = _highlighted(model, found.wrong_inputs, vocabulary)  # HTML, or None: plain text
    cells = "\n".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row[:-1])
                      + f"<td>{html.escape(row[-1]) if shown is None else shown[k]}</td></tr>"
                      for k, row in enumerate(rows))
    legend = "" if shown is None else (
        " Attention: a sentence's blue bar and a word's red background are as strong as the "
        "weight the model's attention gave it (the heaviest in each text at full colour; hover "
        "for the weights).")
    html_path = out / MISCLASSIFIED_HTML_FILE
    html_path.write_text(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>misclassified</title>\n"
        "<style>body{font-family:sans-serif}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px;vertical-align:top;text-align:left}</style>"
        f"</head><body>\n<h1>The first {len(rows)} misclassified test texts</h1>\n"
        f"<p>As the model read them: its vocabulary's words, [UNK] for others.{legend}</p>\n"
        "<table>\n"
        "<tr>" + "".join(f"<th>{h}</th>" for h in header) + "</tr>\n"
        f"{cells}\n</table></body></html>\n", encoding="utf-8")
    return [html_path, csv_path]


def _highlighted(model: Any, inputs: np.ndarray, vocabulary: list[str]) -> list[str] | None:
    """Each text as attention-highlighted HTML when `model` has HAN attention layers, else None
    (kexp.models.han finds them by type and name)."""
    if model is None or np.asarray(inputs).ndim != 3:  # only documents of sentences
        return None
    from kexp.models.han import highlighted_texts

    return highlighted_texts(model, inputs, vocabulary)


def graphviz_available() -> bool:
    """pydot and Graphviz's `dot`: what keras.utils.plot_model needs (without them it prints
    install advice to stdout instead of raising)."""
    return importlib.util.find_spec("pydot") is not None and shutil.which("dot") is not None


def plot_model(model: Any, path: Path) -> Path | None:
    """The model's layer graph as a picture, or None: an optional tool missing or failing never
    fails a run (model_summary.txt has the same facts as text)."""
    if not graphviz_available():
        log.debug("%s skipped: pydot or Graphviz's dot is not installed", path.name)
        return None
    import keras

    try:
        keras.utils.plot_model(model, to_file=str(path), show_shapes=True, dpi=72)
    except Exception as err:  # pydot and dot fail in many ways; none is worth a failed run
        log.debug("%s skipped: %s: %s", path.name, type(err).__name__, err)
        return None
    return path if path.is_file() else None
