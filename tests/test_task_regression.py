"""task=regression: real targets in their own units, judged against scikit-learn on the same
split, with the run's files, kexp.eval and the error for data that do not fit."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from kexp.errors import KexpError
from tests.conftest import compose_train

pytestmark = pytest.mark.slow

QUIET = ["trainer.verbose=0", "logger=none"]


def split_arrays(ds) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = zip(*((np.asarray(x), np.asarray(y)) for x, y in ds), strict=True)
    return np.concatenate(xs), np.concatenate(ys)


@pytest.fixture(scope="module")
def diabetes_run(tmp_path_factory):
    from kexp.recipe import train

    log_dir = tmp_path_factory.mktemp("regression")
    # a linear model (no hidden layer) trained by kexp against scikit-learn's closed form
    cfg = compose_train(["task=regression", "data=diabetes", "model.hidden_units=[]",
                         "optimizer.lr=0.05", "trainer.epochs=60", "trainer.batch_size=32",
                         "callbacks.early_stopping.patience=10", *QUIET,
                         f"paths.log_dir={log_dir}"])
    metrics = train(cfg)
    (folder,) = (log_dir / "runs").iterdir()
    return cfg, folder, metrics


def test_diabetes_r2_is_that_of_linear_regression_on_the_same_split(diabetes_run):
    from sklearn.linear_model import LinearRegression
    from sklearn.metrics import mean_absolute_error, r2_score

    from kexp import data as datasets

    cfg, folder, metrics = diabetes_run
    data = datasets.load(cfg.data, global_batch_size=32, seed=cfg.trainer.seed)
    x_train, y_train = split_arrays(data.train)
    x_test, y_test = split_arrays(data.test)
    reference = LinearRegression().fit(x_train, y_train)
    sk_r2 = r2_score(y_test, reference.predict(x_test))
    assert metrics["test_r2"] == pytest.approx(sk_r2, abs=0.05), (metrics["test_r2"], sk_r2)
    # the metrics are in the target's own units: the model's predictions give them again
    from kexp.models import load_model

    predicted = load_model(folder / "model.keras", compile=False).predict(x_test, verbose=0)
    assert metrics["test_mae"] == pytest.approx(mean_absolute_error(y_test, predicted), rel=1e-4)
    assert metrics["test_rmse"] == pytest.approx(
        float(np.sqrt(np.mean((y_test - predicted) ** 2))), rel=1e-4)
    assert metrics["test_r2"] == pytest.approx(r2_score(y_test, predicted), abs=1e-4)


def test_a_regression_run_leaves_its_pictures_and_its_worst_predictions(diabetes_run):
    _, folder, metrics = diabetes_run
    for name in ("predicted_vs_true.png", "residuals.png", "learning_curves.png",
                 "metrics.json", "model.keras"):
        assert (folder / name).stat().st_size > 0, name
    rows = list(csv.DictReader((folder / "worst_predictions.csv").open()))
    assert len(rows) == 25 and set(rows[0]) == {"test_index", "true_progression",
                                                "predicted_progression"}
    errors = [abs(float(r["true_progression"]) - float(r["predicted_progression"]))
              for r in rows]
    assert errors == sorted(errors, reverse=True)
    saved = json.loads((folder / "metrics.json").read_text())
    assert {"test_rmse", "test_mae", "test_r2", "best_val_rmse", "best_epoch"} <= set(saved)
    assert "test_accuracy" not in saved


def test_kexp_eval_gives_the_run_its_numbers_again(diabetes_run):
    from kexp.recipe import evaluate

    _, folder, metrics = diabetes_run
    again = evaluate(str(folder))
    for key in ("test_loss", "test_rmse", "test_mae", "test_r2"):
        assert again[key] == pytest.approx(metrics[key], rel=1e-5), key


@pytest.mark.parametrize("loss", ["mae", "huber", "log_cosh"])
def test_every_regression_loss_learns(tmp_path, loss):
    from kexp.recipe import train

    metrics = train(compose_train(["task=regression", "data=diabetes", f"task.loss={loss}",
                                   "model.hidden_units=[16]", "optimizer.lr=0.01",
                                   "trainer.epochs=15", *QUIET, f"paths.log_dir={tmp_path}"]))
    assert metrics["test_r2"] > 0.3, metrics  # the mean predicts 0; linear regression ~0.45


def test_classifying_real_targets_is_one_line(tmp_path):
    from kexp.recipe import train

    with pytest.raises(KexpError, match="data=diabetes .*; use task=regression"):
        train(compose_train(["data=diabetes", *QUIET, f"paths.log_dir={tmp_path}"]))
    with pytest.raises(KexpError, match="task=regression needs real-valued targets"):
        train(compose_train(["task=regression", *QUIET, f"paths.log_dir={tmp_path}"]))
