"""Table data and real-valued targets: data=diabetes, data=csv, and the pipeline's table path."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from sklearn.datasets import load_diabetes, load_iris, load_linnerud

from kexp.data import load
from kexp.errors import KexpError

REPO = Path(__file__).resolve().parents[1]


def unbatch(ds) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = zip(*((x.numpy(), y.numpy()) for x, y in ds), strict=True)
    return np.concatenate(xs), np.concatenate(ys)


def diabetes_cfg(**overrides):
    return OmegaConf.create({"source": "diabetes", "name": "diabetes", "test_fraction": 0.2,
                             "val_fraction": 0.1, "targets": "real", "cache": True,
                             "shuffle_buffer": 10000, "subset": None, **overrides})


def csv_cfg(path, target, targets="classes", **overrides):
    return OmegaConf.create({"source": "table", "name": "csv", "path": str(path), "target": target,
                             "targets": targets, "columns": None, "delimiter": ",",
                             "test_path": None, "test_fraction": 0.2, "val_fraction": 0.1,
                             "missing": "error", "cache": True, "shuffle_buffer": 10000,
                             "subset": None, **overrides})


def one_line_error(cfg, match: str, batch: int = 8) -> str:
    with pytest.raises(KexpError, match=match) as info:
        load(cfg, batch, 0)
    message = str(info.value)
    assert "\n" not in message, message
    return message


# ----------------------------------------------------------------------------------- diabetes


def test_diabetes_splits_features_and_target_statistics():
    bundle = load(diabetes_cfg(), 32, 0)
    spec = bundle.spec
    assert spec.is_regression and spec.num_classes == 0 and spec.class_names == []
    assert spec.input_shape == (10,)
    assert spec.feature_names == list(load_diabetes().feature_names)
    assert spec.target_names == ["progression"]
    assert spec.num_train + spec.num_val + spec.num_test == 442
    assert spec.num_test == 89 and spec.num_val == 36  # ceil(0.2 * 442), ceil(0.1 * 353)
    x, y = next(iter(bundle.train))
    assert x.shape == (32, 10) and x.dtype == tf.float32
    assert y.shape == (32, 1) and y.dtype == tf.float32
    x_train, y_train = unbatch(bundle.train)
    assert x_train.shape == (spec.num_train, 10)
    np.testing.assert_allclose(x_train.mean(axis=0), 0, atol=1e-5)  # the training split's
    np.testing.assert_allclose(x_train.std(axis=0), 1, atol=1e-5)   # mean and std
    x_test = unbatch(bundle.test)[0]
    assert np.abs(x_test.mean(axis=0)).max() > 1e-3  # not standardized on its own statistics
    np.testing.assert_allclose(spec.target_mean, y_train.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(spec.target_std, y_train.std(axis=0), rtol=1e-6)
    # the raw targets in their own units (25..346), every one accounted for
    _, y_val = unbatch(bundle.val)
    _, y_test = unbatch(bundle.test)
    every = np.sort(np.concatenate([y_train, y_val, y_test])[:, 0])
    np.testing.assert_array_equal(every, np.sort(load_diabetes().target.astype(np.float32)))


def test_diabetes_seeded_splits_repeat():
    first = unbatch(load(diabetes_cfg(), 64, 3).test)[1]
    np.testing.assert_array_equal(first, unbatch(load(diabetes_cfg(), 64, 3).test)[1])
    other = unbatch(load(diabetes_cfg(), 64, 4).test)[1]
    assert not np.array_equal(np.sort(first, axis=0), np.sort(other, axis=0))
    train_a = unbatch(load(diabetes_cfg(), 64, 3).train)[1]
    np.testing.assert_array_equal(train_a, unbatch(load(diabetes_cfg(), 64, 3).train)[1])


def test_diabetes_yaml_alone_needs_no_task():
    cfg = OmegaConf.load(REPO / "conf" / "data" / "diabetes.yaml")  # targets: ${task.targets}
    assert load(cfg, 64, 0).spec.is_regression


def test_diabetes_refuses_class_targets():
    one_line_error(diabetes_cfg(targets="classes"), r"data=diabetes predicts a real number.*"
                                                    r"task=regression")


def test_the_yaml_as_users_compose_it(tmp_path):
    iris = write_iris(tmp_path / "iris.csv")
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["task=regression", "data=diabetes"])
        classes = compose("train", overrides=["data=diabetes"])  # task=classification
        table = compose("train", overrides=["task=classification", "data=csv",
                                            f"data.path={iris}", "data.target=species"])
    bundle = load(cfg.data, 16, 0)
    assert bundle.spec.name == "diabetes" and bundle.spec.is_regression
    assert bundle.spec.num_train + bundle.spec.num_val + bundle.spec.num_test == 442
    one_line_error(classes.data, r"data.targets: classes, but data=diabetes")
    spec = load(table.data, 16, 0).spec
    assert spec.class_names == ["setosa", "versicolor", "virginica"] and not spec.is_regression


# ---------------------------------------------------------------------------------------- csv


def write_iris(path: Path) -> Path:
    iris = load_iris(as_frame=True)
    frame = iris.data.copy()
    frame["species"] = [iris.target_names[t] for t in iris.target]
    frame.to_csv(path, index=False)
    return path


def write_linnerud(path: Path) -> Path:
    data = load_linnerud(as_frame=True)
    pd.concat([data.data, data.target], axis=1).to_csv(path, index=False)
    return path


def test_csv_classification_iris(tmp_path):
    bundle = load(csv_cfg(write_iris(tmp_path / "iris.csv"), "species"), 16, 0)
    spec = bundle.spec
    assert spec.name == "csv" and not spec.is_regression
    assert spec.num_classes == 3 and spec.class_names == ["setosa", "versicolor", "virginica"]
    assert spec.target_names is None and spec.target_mean is None and spec.target_std is None
    assert spec.input_shape == (4,) and spec.feature_names == list(load_iris().feature_names)
    assert (spec.num_train, spec.num_val, spec.num_test) == (108, 12, 30)
    x, y = next(iter(bundle.train))
    assert x.shape == (16, 4) and x.dtype == tf.float32
    assert y.shape == (16,) and y.dtype == tf.int32
    y_test = unbatch(bundle.test)[1]
    assert np.bincount(y_test).tolist() == [10, 10, 10]  # stratified
    x_train = unbatch(bundle.train)[0]
    np.testing.assert_allclose(x_train.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(x_train.std(axis=0), 1, atol=1e-5)


def test_csv_integer_class_labels_are_ordered_numerically(tmp_path):
    path = tmp_path / "ints.csv"
    pd.DataFrame({"f": np.arange(40.0), "label": [10, 2, 30, 2] * 10}).to_csv(path, index=False)
    bundle = load(csv_cfg(path, "label"), 8, 0)
    assert bundle.spec.class_names == ["2", "10", "30"]
    labels = np.concatenate([unbatch(getattr(bundle, s))[1] for s in ("train", "val", "test")])
    assert np.bincount(labels).tolist() == [20, 10, 10]


def test_csv_regression_one_target(tmp_path):
    path = write_linnerud(tmp_path / "linnerud.csv")
    bundle = load(csv_cfg(path, "Weight", targets="real"), 4, 0)
    spec = bundle.spec
    assert spec.is_regression and spec.num_classes == 0 and spec.class_names == []
    assert spec.target_names == ["Weight"]
    assert spec.feature_names == ["Chins", "Situps", "Jumps", "Waist", "Pulse"]
    assert (spec.num_train, spec.num_val, spec.num_test) == (14, 2, 4)
    x, y = next(iter(bundle.train))
    assert x.shape == (4, 5) and y.shape == (4, 1) and y.dtype == tf.float32
    y_train = unbatch(bundle.train)[1]
    np.testing.assert_allclose(spec.target_mean, y_train.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(spec.target_std, y_train.std(axis=0), rtol=1e-6)


def test_csv_regression_two_targets(tmp_path):
    path = write_linnerud(tmp_path / "linnerud.csv")
    cfg = csv_cfg(path, ["Weight", "Waist"], targets="real", columns=["Chins", "Situps", "Jumps"])
    bundle = load(cfg, 4, 0)
    spec = bundle.spec
    assert spec.target_names == ["Weight", "Waist"]
    assert spec.feature_names == ["Chins", "Situps", "Jumps"]
    x, y = next(iter(bundle.train))
    assert x.shape == (4, 3) and y.shape == (4, 2) and y.dtype == tf.float32
    y_all = np.concatenate([unbatch(getattr(bundle, s))[1] for s in ("train", "val", "test")])
    truth = load_linnerud().target[:, :2]
    np.testing.assert_array_equal(np.sort(y_all, axis=0), np.sort(truth.astype(np.float32), axis=0))
    y_train = unbatch(bundle.train)[1]
    assert len(spec.target_mean) == 2
    np.testing.assert_allclose(spec.target_mean, y_train.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(spec.target_std, y_train.std(axis=0), rtol=1e-6)
    # seeded: the same seed gives the same split
    again = load(cfg, 4, 0)
    np.testing.assert_array_equal(unbatch(again.test)[1], unbatch(bundle.test)[1])


N = 40
COLORS = ["red", "red", "blue", "green"]


def no_size(i: int) -> bool:
    return i % 7 == 3


def no_color(i: int) -> bool:
    return i % 11 == 5


def write_holes(path: Path) -> Path:
    """size (numeric), color (categorical), row (the row's number, as a real target).
    Line i + 2 of the file is row i; size misses on rows 3, 10, 17, ..., color on 5, 16, 27."""
    lines = ["size,color,row"]
    for i in range(N):
        size = "" if no_size(i) else str(float(i * i % 13))
        color = "NA" if no_color(i) else COLORS[i % 4]
        lines.append(f"{size},{color},{i}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_missing_error_names_column_and_lines(tmp_path):
    path = write_holes(tmp_path / "holes.csv")
    message = one_line_error(csv_cfg(path, "row", targets="real"),
                             r"misses values in column 'size' on lines 5, 12, 19, 26, 33 "
                             r"\(and 1 more\), 'color' on lines 7, 18, 29")
    assert "data.missing" in message and str(path) in message


def test_missing_drop_drops_those_rows(tmp_path):
    path = write_holes(tmp_path / "holes.csv")
    bundle = load(csv_cfg(path, "row", targets="real", missing="drop"), 8, 0)
    spec = bundle.spec
    kept = [i for i in range(N) if not (no_size(i) or no_color(i))]
    assert spec.num_train + spec.num_val + spec.num_test == len(kept) == 31
    rows = np.concatenate([unbatch(getattr(bundle, s))[1] for s in ("train", "val", "test")])
    assert sorted(rows[:, 0].astype(int).tolist()) == kept
    assert spec.feature_names == ["size", "color=blue", "color=green", "color=red"]


def test_missing_impute_fills_with_training_median_and_mode(tmp_path):
    path = write_holes(tmp_path / "holes.csv")
    bundle = load(csv_cfg(path, "row", targets="real", missing="impute"), 8, 0)
    spec = bundle.spec
    assert spec.num_train + spec.num_val + spec.num_test == N
    assert spec.feature_names == ["size", "color=blue", "color=green", "color=red"]
    x_train, y_train = unbatch(bundle.train)
    train_rows = y_train[:, 0].astype(int)
    sizes = np.array([np.nan if no_size(i) else float(i * i % 13) for i in range(N)])
    median = np.median(sizes[train_rows][~np.isnan(sizes[train_rows])])
    filled = np.where(np.isnan(sizes), median, sizes)
    mean, std = filled[train_rows].mean(), filled[train_rows].std()
    for split in ("train", "val", "test"):
        x, y = unbatch(getattr(bundle, split))
        for features, row in zip(x, y[:, 0].astype(int), strict=True):
            # standardized with the imputed training column's mean and std
            assert features[0] == pytest.approx((filled[row] - mean) / std, abs=1e-5)
            if no_size(row):
                assert features[0] == pytest.approx((median - mean) / std, abs=1e-5)
            color = "red" if no_color(row) else COLORS[row % 4]  # red: the most frequent
            want = [float(color == c) for c in ("blue", "green", "red")]
            assert features[1:].tolist() == want


def test_test_path_unseen_category_encodes_as_zeros(tmp_path):
    train = tmp_path / "train.csv"
    pd.DataFrame({"color": ["red", "blue"] * 10, "n": np.arange(20.0),
                  "label": ["a", "b", "b", "a"] * 5}).to_csv(train, index=False)
    test = tmp_path / "test.csv"
    pd.DataFrame({"color": ["purple", "red"], "n": [1.0, 2.0], "label": ["a", "b"]}).to_csv(
        test, index=False)
    bundle = load(csv_cfg(train, "label", test_path=str(test)), 8, 0)
    spec = bundle.spec
    assert spec.num_test == 2 and spec.num_train + spec.num_val == 20
    assert spec.feature_names == ["color=blue", "color=red", "n"]
    x, y = unbatch(bundle.test)
    by_label = {int(label): features for features, label in zip(x, y, strict=True)}
    assert by_label[0][:2].tolist() == [0.0, 0.0]  # purple: never seen in training
    assert by_label[1][:2].tolist() == [0.0, 1.0]


def test_subset_and_pipeline_table_path_directly():
    from kexp.data import pipeline
    from kexp.data import raw as raw_splits

    x = np.arange(24, dtype=np.float64).reshape(6, 4)
    raw = raw_splits.from_arrays((x, np.full(6, 3.0)), (x, np.ones(6)), (x, np.ones(6)), [],
                               target_names=["t"], feature_names=list("abcd"))
    assert raw.train.element_spec[1].shape == (1,) and raw.train.element_spec[1].dtype == tf.float32
    bundle = pipeline.build(raw, diabetes_cfg(subset=4), 2, 0)
    spec = bundle.spec
    assert (spec.num_train, spec.num_val, spec.num_test) == (4, 4, 4)
    assert spec.target_mean == (3.0,) and spec.target_std == (1.0,)  # a zero std becomes 1
    assert spec.feature_names == list("abcd") and spec.input_shape == (4,)
    got = unbatch(bundle.test)[0]
    np.testing.assert_array_equal(got, x[:4].astype(np.float32))  # no scale, mean or std
    classes = raw_splits.from_arrays((x, np.arange(6) % 2), (x, np.arange(6) % 2),
                                   (x, np.arange(6) % 2), ["a", "b"])
    spec = pipeline.build(classes, diabetes_cfg(), 4, 0).spec
    assert spec.num_classes == 2 and not spec.is_regression and spec.target_mean is None
    assert classes.train.element_spec[1].dtype == tf.int32


def test_holdout_without_stratification():
    from sklearn.model_selection import train_test_split

    from kexp.data.sources.split import holdout

    labels = np.zeros(50)
    kept, held = holdout(labels, 0.2, 5, "test_fraction", stratify=False)
    want_kept, want_held = train_test_split(np.arange(50), test_size=0.2, random_state=5)
    np.testing.assert_array_equal(kept, want_kept)
    np.testing.assert_array_equal(held, want_held)
    with pytest.raises(KexpError, match="data.val_fraction: cannot hold out"):
        holdout(np.zeros(1), 0.5, 0, "val_fraction", stratify=False)


# ---------------------------------------------------------------------------------- bad input


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


GOOD = "a,b,label\n" + "".join(f"{i},{i % 3}.5,{'xy'[i % 2]}\n" for i in range(20))


@pytest.mark.parametrize(
    ("files", "overrides", "match"),
    [
        ({}, {"path": "nope.csv"}, r"data.path: '.*nope.csv' does not exist"),
        ({}, {"path": "???"}, r"data.path is required but not set"),
        ({"t.csv": GOOD}, {"target": "???"}, r"data.target is required but not set"),
        ({"t.csv": GOOD}, {"target": "price"},
         r"data.target: 'price' is not a column of .* \(columns: 'a', 'b', 'label'\)"),
        ({"t.csv": GOOD}, {"target": 3}, r"data.target: '3' is not a column of"),
        ({"t.csv": GOOD}, {"target": 2.5}, r"data.target: 2.5 must be a column name or a list"),
        ({"t.csv": GOOD}, {"target": []}, r"data.target: \[\] must be a column name"),
        ({"t.csv": GOOD}, {"target": ["a", "a"], "targets": "real"},
         r"data.target: 'a' is listed twice"),
        ({"t.csv": GOOD}, {"target": ["a", "b"]},
         r"data.target: \['a', 'b'\] names 2 columns but data.targets=classes"),
        ({"t.csv": GOOD}, {"target": "label", "targets": "real"},
         r"column 'label' .* has 'x' on line 2; data.targets=real needs numbers"),
        ({"t.csv": GOOD}, {"target": "b"},
         r"column 'b' .* holds real numbers \('0.5' on line 2\); data.targets=classes"),
        ({"t.csv": "a,label\n1,x\n2,x\n3,x\n"}, {}, r"has only 1 class \('x'\) in column 'label'"),
        ({"t.csv": ""}, {}, r"data.path: '.*t.csv' is empty; expected a header row"),
        ({"t.csv": "a,b,label\n"}, {}, r"data.path: '.*t.csv' has a header but no rows"),
        ({"t.csv": "label\nx\ny\n"}, {}, r"has no columns besides the target\(s\) 'label'"),
        ({"t.csv": "a;b;label\n1;2;x\n"}, {},
         r"data.target: 'label' is not a column .*is data.delimiter=',' right\?"),
        ({"t.csv": "a,a,label\n1,2,x\n"}, {}, r"column 'a' appears twice in the header"),
        ({"t.csv": b"a,label\n1,caf\xe9\n"}, {}, r"is not UTF-8 text"),
        ({"t.csv": "a,label\n1,x\n2,y\n3,y,4,5\n"}, {},
         r"data.path: '.*t.csv': line 4 has 4 fields but the header has 2 \(a stray delimiter"),
        # every row one field longer: pandas alone would read the first column as an index
        ({"t.csv": "a,label\n1,x,9\n2,y,9\n"}, {}, r"line 2 has 3 fields but the header has 2"),
        ({"t.csv": 'a,label\n1,"x\n'}, {}, r"data.path: '.*t.csv' is not a readable CSV file"),
        # lines of the file, counting blank lines and quoted fields that span lines
        ({"t.csv": 'a,label\n1,x\n\n2,"multi\nline"\n,y\n'}, {},
         r"misses values in column 'a' on line 6 \(data.missing=error"),
        ({"t.csv": GOOD}, {"targets": "ordinal"},
         r"data.targets: 'ordinal' must be one of classes, real"),
        ({"t.csv": GOOD}, {"missing": "fill"},
         r"data.missing: 'fill' must be one of error, drop, impute"),
        ({"t.csv": GOOD}, {"columns": ["a", "label"]}, r"data.columns: 'label' is a target"),
        ({"t.csv": GOOD}, {"columns": ["a", "zz"]}, r"data.columns: 'zz' is not a column of"),
        ({"t.csv": GOOD}, {"columns": []}, r"data.columns: \[\] must be null"),
        ({"t.csv": GOOD}, {"delimiter": "ab"}, r"data.delimiter: 'ab' must be one character"),
        ({"t.csv": GOOD}, {"val_fraction": 1.5}, r"data.val_fraction: 1.5 must be a number"),
        ({"t.csv": "a,label\n1,x\ninf,y\n3,x\n4,y\n"}, {},
         r"column 'a' has an infinite value on line 3"),
        ({"t.csv": "a,label\n1,x\n2,\n3,y\n4,y\n"}, {"missing": "impute"},
         r"misses target values in column 'label' on line 3; data.missing=impute fills"),
        ({"t.csv": "a,label\n,x\n,y\n,x\n,y\n"}, {"missing": "drop"},
         r"every row misses a value \(data.missing=drop would drop them all"),
        ({"t.csv": GOOD, "test.csv": "a,b,label\n1,2,z\n"}, {"test_path": "test.csv"},
         r"data.test_path: .* has label 'z' in column 'label' on line 2, a class data.path lacks"),
        ({"t.csv": GOOD, "test.csv": "a,label\n1,x\n"}, {"test_path": "test.csv"},
         r"data.test_path: '.*test.csv' lacks column 'b' \(data.columns\) that data.path"),
        ({"t.csv": GOOD, "test.csv": "a,b,label\n1,2,x\nlots,2,y\n"}, {"test_path": "test.csv"},
         r"data.test_path: .* column 'a' has 'lots' on line 3, but data.path has only numbers"),
        ({"t.csv": "a,label\n1,x\n2,y\n"}, {}, r"data.val_fraction: cannot hold out"),
    ],
)
def test_bad_csv_input_is_one_line(tmp_path, files, overrides, match):
    for name, text in files.items():
        write(tmp_path / name, text)
    cfg = csv_cfg(tmp_path / "t.csv", "label")
    for key, value in overrides.items():
        if key in ("path", "test_path") and value != "???":
            value = str(tmp_path / value)  # a file name in tmp_path
        cfg[key] = value
    one_line_error(cfg, match)


def test_targets_need_a_task_or_an_explicit_value(tmp_path):
    path = write(tmp_path / "t.csv", GOOD)
    cfg = OmegaConf.load(REPO / "conf" / "data" / "csv.yaml")  # targets: ${task.targets}
    cfg.path, cfg.target = str(path), "label"
    one_line_error(cfg, re.escape("data.targets: ${task.targets} cannot be resolved"))
    cfg.targets = "classes"
    assert load(cfg, 8, 0).spec.class_names == ["x", "y"]


def test_the_typed_read_gives_to_numerics_values_bit_for_bit(tmp_path):
    """Numbers a table's C-parser read takes over from parsing the strings: every format that
    read accepts must give the float64 that pd.to_numeric gives, and a column mixing numbers
    and words, or missing a value the other read sees, is parsed from its strings."""
    from kexp.data.sources.table import _read, _typed_numbers

    rng = np.random.default_rng(0)
    n = 400
    columns = {
        "digits17": [repr(float(v)) for v in rng.normal(0, 1e3, n)],
        "exponent": [f"{v:.15e}" for v in rng.normal(0, 1e-30, n)],
        "subnormal": [f"{v:.20g}" for v in rng.uniform(1e-310, 1e-305, n)],
        "integer": [str(v) for v in rng.integers(-10**15, 10**15, n)],
        "beyond_2_53": [str(v) for v in rng.integers(2**60, 2**62, n)],
        "spaced": [f" {v:.6f}" for v in rng.normal(size=n)],
        "holes": ["" if i % 7 == 0 else "NA" if i % 11 == 0 else f"{v:.4f}"
                  for i, v in enumerate(rng.normal(size=n))],
        "forms": [["1.", ".5", "-.5", "+3", "1e5", "-0", "0.0", "1E-3", "00012", "7"][i % 10]
                  for i in range(n)],
        "mixed": ["x" if i == 3 else str(i) for i in range(n)],
    }
    path = tmp_path / "numbers.csv"
    path.write_text(",".join(columns) + "\n" + "\n".join(
        ",".join(values[i] for values in columns.values()) for i in range(n)) + "\n")
    table = _read("path", path, ",")
    typed = _typed_numbers(path, ",", table.frame)
    assert set(typed) == set(columns) - {"mixed"}
    for name, values in typed.items():
        parsed = pd.to_numeric(table.frame[name], errors="coerce").to_numpy(np.float64)
        found = values.to_numpy()
        assert np.array_equal(np.isnan(found), np.isnan(parsed)), name
        present = ~np.isnan(parsed)  # compared as bits: -0.0 must stay -0.0
        assert np.array_equal(found[present].view(np.int64), parsed[present].view(np.int64)), name
    assert table.is_numeric("holes") and not table.is_numeric("mixed")
