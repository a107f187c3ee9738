"""Your own table: data.path=FILE.csv with a header row (source `csv`), read with pandas.

The target column(s) (data.target) are predicted from the feature columns (data.columns, or
every other column). data.targets (the task's `targets`) says what the targets are:

- classes: one column of class labels; when every label is an integer they are ordered
  numerically, otherwise as strings, and class id i is the i-th (class names are strings).
  Held-out splits are stratified by class.
- real: one or several numeric columns (float32 targets, one per column); plain random
  held-out splits.

A column whose every value is a number is numeric and standardized with the training split's
mean and std; any other column is categorical and one-hot encoded with the categories seen in
the training split (features `column=value`; a category the training split lacks encodes as all
zeros). Empty fields and NA, N/A, n/a, NaN, nan, null, NULL and ? are missing values:
data.missing=error names them, drop drops their rows, impute fills numeric features with the
training split's median and categorical ones with their most frequent training value.

The test split is data.test_path when given, else data.test_fraction of data.path; then
data.val_fraction of the rest is held out for validation. Also the encoding
kexp.data.sources.diabetes shares (`standardizer`).
"""

from __future__ import annotations

import csv
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig
from omegaconf.errors import InterpolationResolutionError

from kexp.data import keys
from kexp.data.raw import RawSplits, from_arrays
from kexp.data.sources.split import holdout
from kexp.data.sources.text_csv import _delimiter
from kexp.errors import KexpError

TARGETS = ("classes", "real")
MISSING = ("error", "drop", "impute")
NA_VALUES = ("", "NA", "N/A", "n/a", "NaN", "nan", "null", "NULL", "?")
_SHOWN = 5  # lines named per column in an error


def load_raw(cfg: DictConfig, seed: int) -> RawSplits:
    """Read, check, split and encode the table(s)."""
    path = keys.existing_path(cfg, "path", "file")
    kind = targets_kind(cfg)
    target = _target_columns(cfg)
    if kind == "classes" and len(target) != 1:
        raise KexpError(f"data.target: {target} names {len(target)} columns but data.targets="
                        f"classes (task=classification) predicts one column of class labels; "
                        f"name one, or use task=regression for several real targets")
    delimiter = _delimiter(cfg)
    missing = _choice(cfg, "missing", MISSING, "error")
    val_fraction = keys.fraction(cfg, "val_fraction")
    test_path = None
    if keys.get(cfg, "test_path", None) is not None:
        test_path = keys.existing_path(cfg, "test_path", "file")
    test_fraction = keys.fraction(cfg, "test_fraction") if test_path is None else None

    table = _read("path", path, delimiter)
    for name in target:
        table.require(name, "target")
    features = _feature_columns(cfg, table, target)
    table.keep(features + target)
    numeric = [name for name in features if table.is_numeric(name)]
    test = None
    if test_path is not None:
        test = _read("test_path", test_path, delimiter)
        for name in features + target:
            test.require(name, "target" if name in target else "columns")
        test.keep(features + target)
    for t in (table, test):
        if t is None:
            continue
        t.handle_missing(missing, features, target)
        t.to_numeric(numeric)

    if kind == "classes":
        class_names, y = _class_ids(table, target[0])
        y_test = None if test is None else _test_ids(test, target[0], class_names)
    else:
        class_names, y = [], _real(table, target)
        y_test = None if test is None else _real(test, target)

    stratify = kind == "classes"
    rows = table.frame
    if test is None:
        rest, held = holdout(y, test_fraction, seed, "test_fraction", stratify=stratify)
        test_rows, y_test = rows.iloc[held], y[held]
        rows, y = rows.iloc[rest], y[rest]
    else:
        # shuffled, so that data.subset (the first N) still sees every class
        order = np.random.default_rng(seed).permutation(len(y_test))
        test_rows, y_test = test.frame.iloc[order], y_test[order]
    train, val = holdout(y, val_fraction, seed, "val_fraction", stratify=stratify)
    train_rows, val_rows = rows.iloc[train], rows.iloc[val]

    encoder = Encoder.fit(train_rows, features, numeric, impute=missing == "impute")
    return from_arrays(
        (encoder.transform(train_rows), y[train]),
        (encoder.transform(val_rows), y[val]),
        (encoder.transform(test_rows), y_test),
        class_names,
        target_names=list(target) if kind == "real" else None,
        feature_names=encoder.names,
    )


# ----------------------------------------------------------------------------------- the keys


def targets_kind(cfg: DictConfig, default: Any = keys._UNSET, unresolved: str | None = None
                 ) -> str:
    """`data.targets`: classes or real (in the full config it is `${task.targets}`).

    `unresolved`: the answer when that interpolation cannot be resolved (a data config composed
    without a task); None: a KexpError asking for data.targets."""
    try:
        value = keys.get(cfg, "targets", default)
    except InterpolationResolutionError:
        if unresolved is not None:
            return unresolved
        raise KexpError("data.targets: ${task.targets} cannot be resolved in a data config "
                        "without a task; set data.targets to classes or real") from None
    if value not in TARGETS:
        raise KexpError(f"data.targets: {value!r} must be one of {', '.join(TARGETS)}")
    return value


def _choice(cfg: DictConfig, key: str, valid: tuple[str, ...], default: str) -> str:
    value = keys.get(cfg, key, default)
    if value not in valid:
        raise KexpError(f"data.{key}: {value!r} must be one of {', '.join(valid)}")
    return value


def _names(cfg: DictConfig, key: str, value: Any, what: str) -> list[str]:
    """A column name or a non-empty list of distinct ones."""
    def name(v: Any) -> bool:  # a header such as 2020 reaches here as an int from Hydra
        return (isinstance(v, str) and bool(v.strip())) or keys.is_int(v)

    if name(value):
        value = [value]
    if not (isinstance(value, list) and value and all(name(v) for v in value)):
        raise KexpError(f"data.{key}: {value!r} must be {what}")
    names = [str(v).strip() for v in value]
    repeated = sorted({v for v in names if names.count(v) > 1})
    if repeated:
        raise KexpError(f"data.{key}: {repeated[0]!r} is listed twice")
    return names


def _target_columns(cfg: DictConfig) -> list[str]:
    return _names(cfg, "target", keys.get(cfg, "target"),
                  "a column name or a list of column names")


def _feature_columns(cfg: DictConfig, table: _Table, target: list[str]) -> list[str]:
    value = keys.get(cfg, "columns", None)
    if value is None:
        # columns without a header name (the index pandas' to_csv writes) are no features
        features = [c for c in table.columns if c not in target and c]
        if not features:
            raise KexpError(f"data.path: '{table.path}' has no columns besides the target(s) "
                            f"{', '.join(map(repr, target))}; a model needs features")
        return features
    features = _names(cfg, "columns", value, "null (every column but the targets) or a list of "
                                             "column names")
    for name in features:
        if name in target:
            raise KexpError(f"data.columns: {name!r} is a target (data.target); a column cannot "
                            f"be a feature too")
        table.require(name, "columns")
    return features


# ---------------------------------------------------------------------------------- reading


@dataclass
class _Table:
    """One CSV file's columns as stripped strings (NaN where missing); `to_numeric` turns the
    numeric ones into float64. Each column is parsed as numbers once (`_parsed`; most come
    typed from `_typed_numbers`), for the test of whether it is numeric and for the
    conversion."""

    key: str  # data.<key> names the file in errors
    path: Path
    delimiter: str
    frame: pd.DataFrame  # index: the row's position among the file's records
    records: int  # data records (rows) in the file
    _lines: list[int] | None = field(default=None, repr=False)
    _numbers: dict[str, pd.Series] = field(default_factory=dict, repr=False)

    @property
    def columns(self) -> list[str]:
        return [str(c) for c in self.frame.columns]

    @property
    def where(self) -> str:
        return f"data.{self.key}: '{self.path}'"

    def require(self, name: str, key: str) -> None:
        """`name` is a column of this file; else an error for data.<key> listing the columns."""
        if name in self.frame.columns:
            return
        shown = self.columns[:20]
        listed = ", ".join(repr(c) for c in shown) + (" ..." if len(self.columns) > 20 else "")
        hint = ""
        if len(self.columns) == 1 and self.delimiter not in self.columns[0]:
            hint = f"; is data.delimiter={self.delimiter!r} right?"
        if self.key == "test_path":
            raise KexpError(f"{self.where} lacks column {name!r} (data.{key}) that data.path "
                            f"has (its columns: {listed}){hint}")
        raise KexpError(f"data.{key}: {name!r} is not a column of '{self.path}' (columns: "
                        f"{listed}){hint}")

    def keep(self, names: list[str]) -> None:
        self.frame = self.frame[names]

    def is_numeric(self, name: str) -> bool:
        """Every value present is a number (a column with no value at all counts as numeric)."""
        column = self.frame[name]
        return bool((self._parsed(name).notna() | column.isna()).all())

    def _parsed(self, name: str) -> pd.Series:
        """Column `name` as float64, NaN where a value is missing or not a number; for the
        rows still in the frame (handle_missing may drop some after the first parse)."""
        if name not in self._numbers:
            self._numbers[name] = pd.to_numeric(self.frame[name], errors="coerce").astype(
                np.float64)
        parsed = self._numbers[name]
        return parsed if len(parsed) == len(self.frame) else parsed.loc[self.frame.index]

    def line(self, record: int) -> str:
        """'line N' (1-based, in the file) of a record: rescans the file, on errors only."""
        if self._lines is None:
            self._lines = _record_lines(self.path, self.delimiter)
        if len(self._lines) == self.records:
            return f"line {self._lines[record]}"
        return f"data row {record + 1}"  # the scan disagrees with pandas: rows, not lines

    def lines(self, records) -> str:
        records = list(records)
        shown = ", ".join(self.line(r).split(" ", 1)[1] for r in records[:_SHOWN])
        more = f" (and {len(records) - _SHOWN} more)" if len(records) > _SHOWN else ""
        word = "lines" if self.line(records[0]).startswith("line") else "data rows"
        return f"{word if len(records) > 1 else word[:-1]} {shown}{more}"

    def handle_missing(self, missing: str, features: list[str], target: list[str]) -> None:
        holes = self.frame.isna()
        if not holes.to_numpy().any():
            return
        if missing == "drop":
            if holes.any(axis=1).all():
                raise KexpError(f"{self.where}: every row misses a value (data.missing=drop "
                                f"would drop them all; column "
                                f"{self._holes(holes, features + target)})")
            self.frame = self.frame[~holes.any(axis=1)]
            return
        if missing == "impute":
            if holes[target].to_numpy().any():
                raise KexpError(f"{self.where} misses target values in column "
                                f"{self._holes(holes, target)}; data.missing=impute fills "
                                f"features only: fill them in, or set data.missing=drop")
            return
        raise KexpError(f"{self.where} misses values in column "
                        f"{self._holes(holes, features + target)} (data.missing=error: fill "
                        f"them in, or set data.missing to drop or impute)")

    def _holes(self, holes, names: list[str]) -> str:
        found = [name for name in names if holes[name].any()]
        parts = [f"{name!r} on {self.lines(self.frame.index[holes[name]])}" for name in found[:3]]
        return ", ".join(parts) + (f" and {len(found) - 3} more columns" if len(found) > 3 else "")

    def to_numeric(self, names: list[str]) -> None:
        """The numeric columns as float64 (a test file's values must be numbers too)."""
        converted = {}
        for name in names:
            column = self.frame[name]
            parsed = self._parsed(name)
            bad = parsed.isna() & column.notna()
            if bad.any():
                first = bad.idxmax()
                raise KexpError(f"{self.where}: column {name!r} has {column[first]!r} on "
                                f"{self.line(first)}, but data.path has only numbers there")
            infinite = np.isinf(parsed.to_numpy())
            if infinite.any():
                first = self.frame.index[infinite][0]
                raise KexpError(f"{self.where}: column {name!r} has an infinite value on "
                                f"{self.line(first)}")
            converted[name] = parsed
        self.frame = self.frame.assign(**converted)  # one copy of the frame, not one a column
        self._numbers.clear()


def _read(key: str, path: Path, delimiter: str) -> _Table:
    where = f"data.{key}: '{path}'"
    try:
        with warnings.catch_warnings():
            # a row longer than the header: pandas would drop its extra fields with a warning
            warnings.simplefilter("error", pd.errors.ParserWarning)
            # every field as a string: a column's type is decided below, the same for every
            # file; index_col=False: never take the first column as an index (pandas does
            # when every row has one field more than the header); utf-8-sig: spreadsheet
            # programs often start a UTF-8 CSV with a byte-order mark
            frame = pd.read_csv(path, sep=delimiter, dtype=str, keep_default_na=False,
                                na_filter=False, encoding="utf-8-sig", skipinitialspace=True,
                                index_col=False)
    except pd.errors.EmptyDataError:
        raise KexpError(f"{where} is empty; expected a header row naming the columns") from None
    except UnicodeDecodeError as err:
        raise KexpError(f"{where} is not UTF-8 text ({err.reason} at byte {err.start}); save "
                        f"it as UTF-8") from None
    except (pd.errors.ParserWarning, pd.errors.ParserError, csv.Error, ValueError) as err:
        long = _long_row(path, delimiter)
        if long is not None:
            raise KexpError(f"{where}: {long} (a stray delimiter {delimiter!r}, or unquoted "
                            f"text holding one?)") from None
        raise KexpError(f"{where} is not a readable CSV file ({' '.join(str(err).split())})"
                        ) from None
    header = _header(path, delimiter)
    names = [name.strip() for name in header] if len(header) == frame.shape[1] else [
        str(c).strip() for c in frame.columns]
    repeated = sorted({n for n in names if n and names.count(n) > 1})
    if repeated:
        raise KexpError(f"{where}: column {repeated[0]!r} appears twice in the header")
    frame.columns = names
    if frame.empty:
        raise KexpError(f"{where} has a header but no rows")
    frame = frame.apply(lambda column: column.str.strip())
    frame = frame.mask(frame.isin(NA_VALUES))
    return _Table(key, path, delimiter, frame, records=len(frame),
                  _numbers=_typed_numbers(path, delimiter, frame))


def _typed_numbers(path: Path, delimiter: str, frame: pd.DataFrame) -> dict[str, pd.Series]:
    """The columns pandas' C parser reads as numbers, as float64, from a second, typed read
    of the file: the values `pd.to_numeric` gives the stripped strings, bit for bit
    (tests/test_data_table.py), in one pass in C (9,000 rows x 65 columns here: 0.02 s,
    against 0.13 s for to_numeric on the strings, docs/benchmarks.md). A column is taken only
    where both reads agree on which values are missing; any other is parsed from its strings,
    and a typed read that fails or disagrees on the table's shape is not used at all."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            typed = pd.read_csv(path, sep=delimiter, na_values=list(NA_VALUES),
                                keep_default_na=False, encoding="utf-8-sig",
                                skipinitialspace=True, index_col=False)
    except Exception:  # the string read above has already named what is wrong, if anything
        return {}
    if typed.shape != frame.shape:
        return {}
    numbers = {}
    for position, name in enumerate(frame.columns):  # by position: pandas renames repeats
        column = typed.iloc[:, position]
        if column.dtype.kind not in "iuf":
            continue
        values = pd.Series(column.to_numpy(dtype=np.float64), index=frame.index, name=name)
        if (values.isna() == frame[name].isna()).all():
            numbers[name] = values
    return numbers


def _header(path: Path, delimiter: str) -> list[str]:
    """The header row as written (pandas renames repeated names to 'a.1', hiding them)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            for row in csv.reader(f, delimiter=delimiter):
                if row:
                    return row
    except (UnicodeDecodeError, csv.Error):
        pass
    return []


def _long_row(path: Path, delimiter: str) -> str | None:
    """Which line has more fields than the header, in words (None: none has)."""
    header: list[str] | None = None
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f, delimiter=delimiter)
            for row in reader:
                if header is None:
                    header = row if row else None
                elif len(row) > len(header):
                    return (f"line {reader.line_num} has {len(row)} fields but the header has "
                            f"{len(header)}")
    except (UnicodeDecodeError, csv.Error):
        pass
    return None


def _record_lines(path: Path, delimiter: str) -> list[int]:
    """The 1-based line on which each data record (after the header) starts."""
    starts: list[int] = []
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f, delimiter=delimiter)
            previous, header = 0, False
            for row in reader:
                start, previous = previous + 1, reader.line_num
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # a blank line, which pandas skips too
                if header:
                    starts.append(start)
                header = True
    except (UnicodeDecodeError, csv.Error):
        return []
    return starts


# ---------------------------------------------------------------------------------- targets


def _class_ids(table: _Table, name: str) -> tuple[list[str], np.ndarray]:
    """Class names in order (numeric when every label is an integer) and each row's id."""
    labels = table.frame[name]
    numbers = _integers(table, name)
    if numbers is not None:
        values = sorted(set(numbers.tolist()))
        class_names = [str(v) for v in values]
        index = {v: i for i, v in enumerate(values)}
        ids = [index[v] for v in numbers.tolist()]
    else:
        class_names = sorted(set(labels.tolist()))
        index = {label: i for i, label in enumerate(class_names)}
        ids = [index[label] for label in labels.tolist()]
    if len(class_names) < 2:
        raise KexpError(f"data.target: '{table.path}' has only 1 class ({class_names[0]!r}) in "
                        f"column {name!r}; a classifier needs at least 2 (or is it a "
                        f"real-valued target? then use task=regression)")
    return class_names, np.asarray(ids, dtype=np.int32)


def _integers(table: _Table, name: str) -> np.ndarray | None:
    """The labels as int64 when every one is an integer; None when any is not a number; a
    KexpError when they are all numbers but some have a fraction (a real-valued column)."""
    labels = table.frame[name]
    parsed = pd.to_numeric(labels, errors="coerce")
    if parsed.isna().any():
        return None
    values = parsed.to_numpy(dtype=np.float64)
    fractional = ~np.isfinite(values) | (values != np.round(values))
    if fractional.any():
        first = table.frame.index[fractional][0]
        raise KexpError(f"data.target: column {name!r} of '{table.path}' holds real numbers "
                        f"({labels[first]!r} on {table.line(first)}); data.targets=classes "
                        f"needs class labels (names or integers): use task=regression to "
                        f"predict real numbers")
    return values.astype(np.int64)


def _test_ids(test: _Table, name: str, class_names: list[str]) -> np.ndarray:
    numeric = all(_is_int(c) for c in class_names)
    index = {c: i for i, c in enumerate(class_names)}
    ids = []
    for record, label in test.frame[name].items():
        key = str(int(float(label))) if numeric and _is_number(label) and float(
            label).is_integer() else label
        if key not in index:
            raise KexpError(f"{test.where} has label {label!r} in column {name!r} on "
                            f"{test.line(record)}, a class data.path lacks (classes: "
                            f"{', '.join(class_names)})")
        ids.append(index[key])
    return np.asarray(ids, dtype=np.int32)


def _is_number(text: str) -> bool:
    try:
        return np.isfinite(float(text))
    except ValueError:
        return False


def _is_int(text: str) -> bool:
    return _is_number(text) and float(text).is_integer()


def _real(table: _Table, names: list[str]) -> np.ndarray:
    """The real targets as float32 (N, k); a value that is not a finite number is named."""
    out = np.empty((len(table.frame), len(names)), dtype=np.float32)
    for j, name in enumerate(names):
        column = table.frame[name]
        parsed = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(parsed)
        if bad.any():
            first = table.frame.index[bad][0]
            raise KexpError(f"data.target: column {name!r} of '{table.path}' has "
                            f"{column[first]!r} on {table.line(first)}; data.targets=real "
                            f"needs numbers in every target column (class labels? use "
                            f"task=classification)")
        out[:, j] = parsed
    return out


# --------------------------------------------------------------------------------- encoding


def standardizer(train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and std (population) of a (N, F) training array; a std of 0 (a
    constant column) becomes 1, so that column standardizes to 0."""
    values = np.asarray(train, dtype=np.float64)
    mean, std = values.mean(axis=0), values.std(axis=0)
    std = np.where(std <= 1e-12 * np.maximum(1.0, np.abs(mean)), 1.0, std)
    return mean, std


@dataclass
class Encoder:
    """Numeric columns standardized, categorical ones one-hot; fitted on the training rows."""

    columns: list[str]
    numeric: set[str]
    fill: dict[str, Any]  # impute: the value a missing one becomes (median / most frequent)
    mean: dict[str, float]
    std: dict[str, float]
    categories: dict[str, list[str]]

    @classmethod
    def fit(cls, rows: pd.DataFrame, columns: list[str], numeric: list[str], impute: bool
            ) -> Encoder:
        fill: dict[str, Any] = {}
        mean: dict[str, float] = {}
        std: dict[str, float] = {}
        categories: dict[str, list[str]] = {}
        for name in columns:
            column = rows[name]
            if impute and column.isna().any():
                present = column.dropna()
                if present.empty:
                    raise KexpError(f"data.missing=impute: column {name!r} has no value in the "
                                    f"training split to impute from (leave it out with "
                                    f"data.columns, or use data.missing=drop)")
                if name in numeric:
                    fill[name] = float(np.median(present.to_numpy(dtype=np.float64)))
                else:
                    counts = present.value_counts()
                    fill[name] = min(counts.index[counts == counts.max()])  # ties: first name
                column = column.fillna(fill[name])
            if name in numeric:
                m, s = standardizer(column.to_numpy(dtype=np.float64)[:, np.newaxis])
                mean[name], std[name] = float(m[0]), float(s[0])
            else:
                categories[name] = sorted(set(column.tolist()))
        return cls(list(columns), set(numeric), fill, mean, std, categories)

    @property
    def names(self) -> list[str]:
        out = []
        for name in self.columns:
            if name in self.numeric:
                out.append(name)
            else:
                out.extend(f"{name}={value}" for value in self.categories[name])
        return out

    def transform(self, rows: pd.DataFrame) -> np.ndarray:
        """(N, F) float32 features; an unseen category (or a missing one, under drop/error it
        cannot be) encodes as all zeros."""
        parts = []
        for name in self.columns:
            column = rows[name]
            if name in self.fill:
                column = column.fillna(self.fill[name])
            if name in self.numeric:
                values = column.to_numpy(dtype=np.float64)
                parts.append(((values - self.mean[name]) / self.std[name])[:, np.newaxis])
            else:
                codes = pd.Categorical(column, categories=self.categories[name]).codes
                onehot = np.zeros((len(column), len(self.categories[name])))
                seen = codes >= 0
                onehot[np.flatnonzero(seen), codes[seen]] = 1.0
                parts.append(onehot)
        return np.concatenate(parts, axis=1).astype(np.float32)
