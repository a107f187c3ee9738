"""task=gan: the builders, the adversarial losses, a GAN run on digits end to end (files,
metrics, MLflow, the saved generator), conditional generation, kexp.generate and kexp.eval,
and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from omegaconf import OmegaConf

from tests.conftest import compose_train, run_kexp
from tests.test_e2e import client, run_dirs

# small networks, few samples: a digits GAN run takes seconds
TINY = ["task=gan", "trainer.verbose=0", "task.num_samples=300", "task.reference_epochs=4",
        "model.generator_units=[32,64]", "model.discriminator_units=[64,32]"]


def train_gan(log_dir: Path, *overrides: str) -> tuple[dict, Path]:
    from kexp.recipe import train

    cfg = compose_train([*TINY, f"paths.log_dir={log_dir}", *overrides])
    metrics = train(cfg)
    return metrics, run_dirs(log_dir)[-1]


# ------------------------------------------------------------------ builders and losses


@pytest.mark.parametrize(("shape", "start"), [((8, 8, 1), 4), ((28, 28, 1), 7),
                                              ((32, 32, 3), 4), ((64, 64, 3), 4)])
@pytest.mark.parametrize("classes", [0, 10])
def test_dcgan_layout_follows_the_image_size(shape, start, classes):
    from kexp.models.dcgan import dcgan

    generator, discriminator = dcgan(shape, filters=8, label_classes=classes)
    noise = np.zeros((2, 100), np.float32)
    labels = np.array([0, 9], np.int32)
    images = np.asarray(generator([noise, labels] if classes else noise))
    assert tuple(images.shape) == (2, *shape)
    (start_square,) = [layer for layer in generator.layers
                       if isinstance(layer, keras.layers.Reshape)]
    assert tuple(start_square.output.shape[1:3]) == (start, start)
    scores = discriminator([images, labels] if classes else images)
    assert tuple(scores.shape) == (2, 1) and scores.dtype == "float32"


def test_dcgan_refuses_a_size_it_cannot_halve():
    from kexp.errors import KexpError
    from kexp.models.dcgan import dcgan

    with pytest.raises(KexpError, match="model=dcgan: images of 30x30"):
        dcgan((30, 30, 1), depth=2)


def test_bce_is_keras_cross_entropy_on_logits():
    from kexp.tasks.gan import losses

    real, fake = np.array([2.0, -1.0, 0.3]), np.array([-3.0, 0.5, 1.0])
    bce = keras.losses.BinaryCrossentropy(from_logits=True, reduction=None)
    expected_d = bce(np.ones((3, 1)), real[:, None]) + bce(np.zeros((3, 1)), fake[:, None])
    np.testing.assert_allclose(losses.discriminator_loss("bce", real, fake), expected_d,
                               rtol=1e-5)
    np.testing.assert_allclose(losses.generator_loss("bce", fake),
                               bce(np.ones((3, 1)), fake[:, None]), rtol=1e-5)
    # one-sided smoothing: real targets 0.9, fake targets still 0
    smoothed = losses.discriminator_loss("bce", real, fake, smoothing=0.1)
    expected = bce(np.full((3, 1), 0.9), real[:, None]) + bce(np.zeros((3, 1)), fake[:, None])
    np.testing.assert_allclose(smoothed, expected, rtol=1e-5)


def test_gradient_penalty_of_a_linear_critic():
    """D(x) = w.x has gradient w everywhere: the penalty is (|w| - 1)^2 for every example."""
    from kexp.tasks.gan.model import GAN

    shape = (4, 4, 1)
    noise = keras.Input((8,))
    generator = keras.Model(noise, keras.layers.Reshape(shape)(keras.layers.Dense(16)(noise)))
    image = keras.Input(shape)
    linear = keras.layers.Dense(1, use_bias=False)
    discriminator = keras.Model(image, linear(keras.layers.Flatten()(image)))
    w = np.random.default_rng(0).normal(size=(16, 1)).astype("float32")
    linear.set_weights([w])
    gan = GAN(generator, discriminator, latent_dim=8, loss="wgan_gp", seed=0)
    real = np.random.default_rng(1).random((5, *shape)).astype("float32")
    fake = np.random.default_rng(2).random((5, *shape)).astype("float32")
    penalty = np.asarray(gan._penalty(real, fake, None))
    np.testing.assert_allclose(penalty, (np.linalg.norm(w) - 1) ** 2, rtol=1e-5)


# ------------------------------------------------------------------ a run end to end


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory) -> tuple[dict, Path, Path]:
    """A 3-epoch gan_mlp run on digits with a real MLflow store: (metrics, run dir, log dir)."""
    log_dir = tmp_path_factory.mktemp("gan") / "logs"
    metrics, run = train_gan(log_dir, "trainer.epochs=3",
                             f"logger.tracking_uri=sqlite:///{log_dir}/mlflow.db")
    return metrics, run, log_dir


def test_a_gan_run_reports_its_distances_beside_the_real_floor(gan_run):
    metrics, run, log_dir = gan_run
    for name in ("fd_refcnn", "kid_refcnn", "cs_refcnn"):
        assert np.isfinite(metrics[f"test_{name}"]) and np.isfinite(metrics[f"real_{name}"])
    # three epochs of a tiny GAN are far from real digits; real train images are close to test
    assert metrics["real_fd_refcnn"] < metrics["test_fd_refcnn"]
    assert metrics["real_cs_refcnn"] > metrics["test_cs_refcnn"]
    assert metrics["best_epoch"] in (1, 2, 3) and metrics["epochs"] == 3
    history = (run / "history.csv").read_text().splitlines()
    header = history[0].split(",")
    assert {"d_loss", "g_loss", "d_real_accuracy", "d_fake_accuracy", "val_fd_refcnn"} <= \
        set(header) and len(history) == 4
    info = json.loads(next((log_dir / "reference_classifiers").glob("*/info.json")).read_text())
    assert info["test_accuracy"] > 0.8  # a classifier worth judging by


def test_a_gan_run_leaves_its_pictures_and_a_safe_generator(gan_run):
    _, run, _ = gan_run
    from kexp.models import load_model

    for name in ("samples_grid.png", "training.gif", "class_histogram.png",
                 "learning_curves.png", "grids/epoch_001.png", "grids/epoch_003.png"):
        assert (run / name).is_file(), name
    generator = load_model(run / "model.keras", safe_mode=True, compile=False)
    assert [tuple(i.shape) for i in generator.inputs] == [(None, 100)]
    images = np.asarray(generator(np.zeros((2, 100), np.float32)))
    assert images.shape == (2, 8, 8, 1) and images.min() >= -1 and images.max() <= 1


def test_mlflow_holds_the_grids_by_epoch_and_the_final_scores(gan_run):
    metrics, run, log_dir = gan_run
    store = client(log_dir)
    run_id = (run / "mlflow_run_id.txt").read_text().strip() \
        if (run / "mlflow_run_id.txt").exists() else None
    (found,) = store.search_runs([store.get_experiment_by_name("kexp").experiment_id])
    assert run_id in (None, found.info.run_id)
    assert found.data.metrics["test_fd_refcnn"] == pytest.approx(metrics["test_fd_refcnn"])
    assert "real_fd_refcnn" in found.data.metrics
    steps = [m.step for m in store.get_metric_history(found.info.run_id, "val_fd_refcnn")]
    assert steps == [0, 1, 2]
    images = [a.path for a in store.list_artifacts(found.info.run_id, "images")]
    assert sum("samples" in p for p in images) >= 3, images  # one per epoch (+ thumbnails)


def test_generate_writes_the_files_other_tools_read(gan_run, tmp_path):
    _, run, _ = gan_run
    from kexp.tasks.gan.samples import generate

    path = generate(run, n=30, seed=3, out=tmp_path / "a")
    with np.load(path) as saved:
        assert saved.files == ["images"]
        images = saved["images"]
    assert images.shape == (30, 8, 8, 1) and images.dtype == np.uint8
    assert (tmp_path / "a" / "samples.png").is_file()
    again = np.load(generate(run, n=30, seed=3, out=tmp_path / "b"))["images"]
    np.testing.assert_array_equal(images, again)  # the seed decides the images


def test_eval_recomputes_the_distances_of_the_run(gan_run):
    metrics, run, _ = gan_run
    from kexp.recipe import evaluate

    again = evaluate(run)
    # the same generator, noise seed and test images: the same numbers
    assert again["test_fd_refcnn"] == pytest.approx(metrics["test_fd_refcnn"], rel=1e-4)
    assert again["test_cs_refcnn"] == pytest.approx(metrics["test_cs_refcnn"], rel=1e-4)


def test_a_conditional_gan_draws_the_class_it_is_asked_for(tmp_path):
    """After a short run on digits the reference classifier sees the requested digit in most
    samples (chance is 10%)."""
    from kexp.tasks.gan.samples import generate

    metrics, run = train_gan(tmp_path / "logs", "task.conditional=true", "trainer.epochs=8",
                             "trainer.batch_size=16", "logger=none",
                             "model.generator_units=[64,128]",
                             "model.discriminator_units=[128,64]")
    assert metrics["test_label_accuracy_refcnn"] > 0.5, metrics
    with np.load(generate(run, n=20, label=3, out=tmp_path / "threes")) as saved:
        assert saved["labels"].tolist() == [3] * 20 and saved["images"].shape[0] == 20
    grid = OmegaConf.load(run / "config.yaml")
    assert grid.task.conditional is True


# ------------------------------------------------------------------ bad input, one line each


@pytest.mark.parametrize(("args", "named"), [
    (["task=gan", "model=mlp"], "model=mlp: task=gan needs"),
    (["task=gan", "task.loss=wgan"], "task.loss"),
    (["task=gan", "task.n_critic=0"], "task.n_critic"),
    (["task=gan", "task.discriminator_optimizer={lr: 1e-3, nope: 1}"],
     "task.discriminator_optimizer"),
    (["task=classification", "model=dcgan"], "model=dcgan"),
])
def test_bad_gan_input_is_one_line(tmp_path, args, named):
    done = run_kexp([*args, "logger=none", "trainer.epochs=1"], tmp_path)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and named in lines[0], done.stderr[-2000:]


def test_gan_on_text_data_is_one_line(tmp_path):
    rows = ["text,label"] + [f"{'good fine' if i % 2 else 'bad poor'} words {i},{i % 2}"
                             for i in range(40)]
    (tmp_path / "reviews.csv").write_text("\n".join(rows) + "\n")
    done = run_kexp(["task=gan", "data=text_csv", f"data.path={tmp_path / 'reviews.csv'}",
                     "logger=none"], tmp_path)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr[-2000:]
    assert "task=gan generates images, but data=" in lines[0] and "text" in lines[0]


def test_generate_refuses_bad_arguments_in_one_line(gan_run, tmp_path):
    _, run, _ = gan_run
    for args, named in ((["n=0"], "n:"), (["label=3"], "label: 3"), (["n=5", "seed=x"], "seed")):
        done = subprocess.run([sys.executable, "-m", "kexp.generate", f"run_dir={run}", *args],
                              capture_output=True, text=True, timeout=120, cwd=tmp_path)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1 and named in lines[0], done.stderr


def test_the_report_ranks_gan_runs_by_distance_and_shows_the_grid(gan_run, tmp_path):
    _, _, log_dir = gan_run
    from kexp.tracking import runs
    from kexp.tracking.report_page import write_report

    uri = f"sqlite:///{log_dir}/mlflow.db"
    frame = runs.load_runs(uri, "kexp")
    rank = runs.ranking(frame)
    assert (rank.metric, rank.higher) == ("metrics.test_fd_refcnn", False)
    page = write_report(frame, uri, "kexp", tmp_path / "report.html").read_text()
    assert 'alt="samples"' in page and 'alt="best_run"' in page
    assert "test_fd_refcnn" in page and "real_fd_refcnn" in page
