"""task=classification: every loss the seeds compare trains digits, and every run reports the
same comparable numbers (test accuracy, an unsmoothed cross-entropy, the calibration error)."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from kexp.analysis import expected_calibration_error
from kexp.errors import KexpError
from kexp.tasks import make_task
from kexp.tasks.losses import OnOneHot
from tests.conftest import compose_train

LABELS = np.array([0, 2, 1, 2])
PROBS = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.3, 0.4, 0.3], [0.5, 0.25, 0.25]],
                 dtype="float32")


def loss_of(loss: str, **settings) -> keras.losses.Loss:
    task = make_task(compose_train([f"task.loss={loss}",
                                    *(f"task.{k}={v}" for k, v in settings.items())]))
    return task.keras_loss(3)


def test_focal_with_gamma_zero_is_cross_entropy():
    focal = float(loss_of("focal", gamma=0)(LABELS, PROBS))
    plain = float(keras.losses.SparseCategoricalCrossentropy()(LABELS, PROBS))
    assert focal == pytest.approx(plain, rel=1e-5)
    assert float(loss_of("focal", gamma=2)(LABELS, PROBS)) < plain  # easy examples count less


def test_label_smoothing_matches_keras_categorical_cross_entropy():
    one_hot = np.eye(3, dtype="float32")[LABELS]
    reference = keras.losses.CategoricalCrossentropy(label_smoothing=0.1)(one_hot, PROBS)
    ours = loss_of("cross_entropy", label_smoothing=0.1)(LABELS, PROBS)
    assert float(ours) == pytest.approx(float(reference), rel=1e-5)


def test_hinge_maps_labels_to_plus_minus_one_by_hand():
    scores = np.array([[2.0, -1.0, 0.5]], dtype="float32")
    # targets +1 -1 -1: max(0, 1 - y s) = 0, 0, 1.5 -> mean 0.5
    assert float(loss_of("hinge")(np.array([0]), scores)) == pytest.approx(0.5)
    assert float(loss_of("squared_hinge")(np.array([0]), scores)) == pytest.approx(2.25 / 3)


def test_mse_and_kl_read_probabilities_against_one_hot_targets():
    one_hot = np.eye(3, dtype="float32")[LABELS]
    assert float(loss_of("mse")(LABELS, PROBS)) == pytest.approx(
        float(np.mean((one_hot - PROBS) ** 2)), rel=1e-5)
    kl = np.mean(np.sum(one_hot * np.log(np.clip(one_hot, 1e-7, 1) / PROBS), axis=1))
    assert float(loss_of("kl_divergence")(LABELS, PROBS)) == pytest.approx(float(kl), rel=1e-4)


def test_a_loss_survives_saving(tmp_path):
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(inputs))
    model.compile(loss=loss_of("kl_divergence", label_smoothing=0.2))
    model.save(tmp_path / "m.keras")
    from kexp.models import load_model

    again = load_model(tmp_path / "m.keras")
    assert isinstance(again.loss, OnOneHot) and again.loss.label_smoothing == 0.2


def test_expected_calibration_error_by_hand():
    # bins of width 1/15: 0.95 and 0.97 share the last bin (one right, one wrong): |0.5-0.96|;
    # 0.5 sits alone in bin 8 and is right: |1-0.5|
    ece = expected_calibration_error(np.array([0.95, 0.97, 0.5]), np.array([1, 0, 1]))
    assert ece == pytest.approx((2 * 0.46 + 0.5) / 3)
    assert expected_calibration_error(np.array([1.0, 1.0]), np.array([1, 1])) == 0.0


@pytest.mark.parametrize("overrides, words", [
    (["task.loss=hinj"], ["task.loss", "'hinj'", "cross_entropy", "kl_divergence"]),
    (["task=regression", "task.loss=focal"], ["task.loss", "'focal'", "huber", "log_cosh"]),
    (["task.label_smoothing=1.5"], ["task.label_smoothing", "[0, 1)"]),
    (["task.gamma=-1"], ["task.gamma", ">= 0"]),
    (["task.monitor=val_f1"], ["task.monitor", "val_accuracy", "val_cross_entropy"]),
    (["tuner.objective=val_r2"], ["tuner.objective", "val_accuracy"]),
])
def test_bad_task_settings_are_one_line(overrides, words):
    from kexp.config import validate

    if any(o.startswith("tuner.") for o in overrides):
        from hydra import compose, initialize_config_module

        with initialize_config_module("kexp.conf", version_base="1.3"):
            cfg = compose("tune", overrides=overrides)
    else:
        cfg = compose_train(overrides)
    with pytest.raises(KexpError) as err:
        validate(cfg)
    message = str(err.value)
    assert "\n" not in message and all(w in message for w in words), message


@pytest.fixture(scope="module")
def loss_runs(tmp_path_factory):
    """Digits, the default MLP, 8 epochs with each loss; run directory and metrics per loss."""
    from kexp.recipe import train
    from kexp.training.throughput import Throughput  # noqa: F401  (TensorFlow loaded once)

    log_dir = tmp_path_factory.mktemp("losses")
    runs = {}
    for loss in ("cross_entropy", "focal", "mse", "hinge", "squared_hinge", "kl_divergence"):
        extra = ["task.label_smoothing=0.1"] if loss == "kl_divergence" else []
        cfg = compose_train([f"task.loss={loss}", *extra, "trainer.epochs=8", "optimizer.lr=0.01",
                             "trainer.verbose=0", "logger=none", f"paths.log_dir={log_dir}",
                             "callbacks.early_stopping.enabled=false"])
        metrics = train(cfg)
        (folder,) = [p for p in (log_dir / "runs").iterdir() if p.name not in
                     {r[0].name for r in runs.values()}]
        runs[loss] = (folder, metrics)
    return runs


@pytest.mark.slow
def test_every_loss_learns_digits_and_reports_comparable_numbers(loss_runs):
    for loss, (folder, metrics) in loss_runs.items():
        saved = json.loads((folder / "metrics.json").read_text())
        assert saved == pytest.approx(metrics)
        assert metrics["test_accuracy"] >= 0.90, (loss, metrics["test_accuracy"])
        assert 0 <= metrics["test_ece"] < 0.5, (loss, metrics["test_ece"])
        assert np.isfinite(metrics["test_cross_entropy"]), loss
        assert "best_val_accuracy" in metrics and (folder / "confusion_matrix.png").is_file()
    # the cross-entropy is the unsmoothed one: for plain cross-entropy it is the loss itself
    _, plain = loss_runs["cross_entropy"]
    assert plain["test_cross_entropy"] == pytest.approx(plain["test_loss"], rel=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["hinge", "kl_divergence"])
def test_hinge_and_kl_runs_reload_and_reevaluate(loss_runs, loss):
    from kexp.recipe import evaluate

    folder, metrics = loss_runs[loss]
    again = evaluate(str(folder))
    for key in ("test_loss", "test_accuracy", "test_cross_entropy"):
        assert again[key] == pytest.approx(metrics[key], rel=1e-5, abs=1e-6), key
