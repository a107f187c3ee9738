"""Your own labelled text: data.path=FILE.csv with a header row, a text column and a label column.

Labels are class names: when every label is an integer they are ordered numerically (0..K-1 stay
0..K-1; 1..K become 0..K-1), otherwise as strings, and class id i is the i-th in that order.
The test split is data.test_path when given, else data.test_fraction of data.path (stratified);
data.val_fraction of the rest is held out for validation.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from kexp.data import keys
from kexp.data.raw import RawSplits, from_arrays
from kexp.data.sources.split import holdout
from kexp.errors import KexpError

_INT = re.compile(r"[+-]?\d+")
_FIELD_LIMIT = 2**31 - 1  # csv's default 128 KiB per field is less than some documents


def load_raw(cfg: DictConfig, seed: int) -> RawSplits:
    """Read, check and split the CSV file(s)."""
    path = keys.existing_path(cfg, "path", "file")
    text_column = keys.string(cfg, "text_column")
    label_column = keys.string(cfg, "label_column")
    delimiter = _delimiter(cfg)
    val_fraction = keys.fraction(cfg, "val_fraction")
    test_path = None
    if keys.get(cfg, "test_path", None) is not None:
        test_path = keys.existing_path(cfg, "test_path", "file")

    texts, labels = _read("path", path, text_column, label_column, delimiter)
    class_names, y = _class_ids(labels, path, label_column)
    if test_path is None:
        rest, test = holdout(y, keys.fraction(cfg, "test_fraction"), seed, "test_fraction")
        test_texts, y_test = texts[test], y[test]
        texts, y = texts[rest], y[rest]
    else:
        test_texts, test_labels = _read("test_path", test_path, text_column, label_column,
                                        delimiter)
        y_test = _test_ids(test_labels, class_names, test_path, label_column)
        # shuffled, so that data.subset (the first N) still sees every class
        order = np.random.default_rng(seed).permutation(len(y_test))
        test_texts, y_test = test_texts[order], y_test[order]
    train, val = holdout(y, val_fraction, seed, "val_fraction")
    return from_arrays(
        (texts[train], y[train]), (texts[val], y[val]), (test_texts, y_test), class_names
    )


def _delimiter(cfg: DictConfig) -> str:
    value = keys.get(cfg, "delimiter", ",")
    if value in ("tab", "\\t"):  # what a shell lets one type for a tab
        value = "\t"
    if not isinstance(value, str) or len(value) != 1 or value in "\r\n\"":
        raise KexpError(f"data.delimiter: {value!r} must be one character such as ',' ';' '|' "
                        f"or tab")
    return value


def _read(key: str, path: Path, text_column: str, label_column: str, delimiter: str
          ) -> tuple[np.ndarray, list[str]]:
    """The text column as an object array of str and the label column as stripped strings."""
    where = f"data.{key}: '{path}'"
    texts: list[str] = []
    labels: list[str] = []
    old_limit = csv.field_size_limit(_FIELD_LIMIT)
    try:
        # utf-8-sig: spreadsheet programs often start a UTF-8 CSV with a byte-order mark
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f, delimiter=delimiter)
            header = next(reader, None)
            if header is None:
                raise KexpError(f"{where} is empty; expected a header row naming the columns "
                                f"(for example: {text_column}{delimiter}{label_column})")
            header = [name.strip() for name in header]
            text_at = _column(header, text_column, "text_column", path, delimiter)
            label_at = _column(header, label_column, "label_column", path, delimiter)
            for row in reader:
                if not row:
                    continue  # blank line
                if len(row) <= max(text_at, label_at):
                    raise KexpError(f"{where} line {reader.line_num} has {len(row)} field(s) but "
                                    f"the header has {len(header)} (a stray or missing "
                                    f"delimiter {delimiter!r}, or unquoted text?)")
                text, label = row[text_at], row[label_at].strip()
                if not text.strip():
                    raise KexpError(f"{where} line {reader.line_num}: empty text in column "
                                    f"{text_column!r} (remove the row or fill it in)")
                if not label:
                    raise KexpError(f"{where} line {reader.line_num}: empty label in column "
                                    f"{label_column!r}")
                texts.append(text)
                labels.append(label)
    except UnicodeDecodeError as err:
        raise KexpError(f"{where} is not UTF-8 text ({err.reason} at byte {err.start}); "
                        f"save it as UTF-8") from None
    except csv.Error as err:
        raise KexpError(f"{where} is not a readable CSV file ({err})") from None
    finally:
        csv.field_size_limit(old_limit)
    if not texts:
        raise KexpError(f"{where} has a header but no rows")
    # object, not numpy's fixed-width unicode, which would pad every text to the longest one
    return np.array(texts, dtype=object), labels


def _column(header: list[str], name: str, key: str, path: Path, delimiter: str) -> int:
    if name not in header:
        shown = ", ".join(repr(h) for h in header[:20]) + (" ..." if len(header) > 20 else "")
        hint = ""
        if len(header) == 1 and delimiter not in header[0]:
            hint = f"; is data.delimiter={delimiter!r} right?"
        raise KexpError(f"data.{key}: {name!r} is not a column of '{path}' (columns: {shown})"
                        f"{hint}")
    return header.index(name)


def _class_ids(labels: list[str], path: Path, label_column: str
               ) -> tuple[list[str], np.ndarray]:
    """Class names in order (numeric when every label is an integer) and each row's id."""
    if all(_INT.fullmatch(label) for label in labels):
        values = sorted({int(label) for label in labels})
        class_names = [str(v) for v in values]
        index = {v: i for i, v in enumerate(values)}
        ids = [index[int(label)] for label in labels]
    else:
        class_names = sorted(set(labels))
        index = {name: i for i, name in enumerate(class_names)}
        ids = [index[label] for label in labels]
    if len(class_names) < 2:
        raise KexpError(f"data.label_column: '{path}' has only 1 class ({class_names[0]!r}) in "
                        f"column {label_column!r}; a classifier needs at least 2")
    return class_names, np.asarray(ids, dtype=np.int32)


def _test_ids(labels: list[str], class_names: list[str], path: Path, label_column: str
              ) -> np.ndarray:
    numeric = all(_INT.fullmatch(name) for name in class_names)
    index = {name: i for i, name in enumerate(class_names)}
    ids = []
    for label in labels:
        name = str(int(label)) if numeric and _INT.fullmatch(label) else label
        if name not in index:
            raise KexpError(f"data.test_path: '{path}' has label {label!r} in column "
                            f"{label_column!r} that data.path lacks (classes: "
                            f"{', '.join(class_names)})")
        ids.append(index[name])
    return np.asarray(ids, dtype=np.int32)
