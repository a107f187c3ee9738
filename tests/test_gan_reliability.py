"""task=gan under the conditions a real run meets: a kill and a resume, two replicas, mixed
precision, TFDS image data (28 px grey, 32 px colour), a search, and a loss that diverges.

Subprocesses only where a test needs a process of its own (a SIGKILL, logical devices set
before TensorFlow starts, an exit code and stderr); the rest runs in-process on one digits log
dir whose reference classifier is trained once.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT, compose_train, run_kexp, two_trial_search
from tests.test_e2e import client, run_dirs
from tests.test_resume import killed_and_resumed

pytestmark = pytest.mark.slow

# tiny networks, few samples, a 1-epoch reference classifier: each GAN run takes seconds
TINY = ["task=gan", "data=digits", "trainer.verbose=0", "task.num_samples=200",
        "task.reference_epochs=1", "model.generator_units=[32,64]",
        "model.discriminator_units=[64,32]"]
LOSSES = ("d_loss", "g_loss")
TIMING = {"wall_seconds", "examples_per_second", "seconds_to_first_step"}  # machine load


def history(run: Path) -> list[dict[str, str]]:
    with open(run / "history.csv") as f:
        return list(csv.DictReader(f))


def pixels(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image)


@pytest.fixture(scope="module")
def digits_logs(tmp_path_factory) -> Path:
    """A log dir holding the digits reference classifier, trained once (by `prepare`, as a
    run's first step does): the in-process runs use it, the subprocess runs get a copy."""
    from kexp.recipe import prepare

    logs = tmp_path_factory.mktemp("gan_digits") / "logs"
    prepare(compose_train([*TINY, "logger=none", f"paths.log_dir={logs}"]))
    assert list((logs / "reference_classifiers").glob("digits-*/model.keras"))
    return logs


def with_judge(digits_logs: Path, cwd: Path) -> Path:
    """`cwd`, whose logs/ (KEXP_LOG_DIR of run_kexp) holds the digits reference classifier."""
    shutil.copytree(digits_logs / "reference_classifiers",
                    cwd / "logs" / "reference_classifiers")
    return cwd


# ------------------------------------------------------------------ 1. kill and resume

# 162 steps an epoch at batch 8 (~2 s here): a kill 0.2 s after "Epoch 2/" lands inside epoch 2,
# or on an idle machine in epoch 3: both must resume the same
RESUME = [*TINY, "trainer.epochs=3", "trainer.batch_size=8", "trainer.deterministic=true",
          "trainer.verbose=2", "logger=none"]


def test_a_killed_gan_run_resumes_to_the_uninterrupted_result(tmp_path, digits_logs):
    # both runs judged by the same reference classifier, trained before either starts
    reference = with_judge(digits_logs, tmp_path / "reference")
    interrupted = with_judge(digits_logs, tmp_path / "interrupted")

    def check_killed(run: Path) -> None:
        assert (run / "backup" / "state.npz").is_file()
        check_the_backup_holds_the_whole_game(run)

    run, expected = killed_and_resumed(RESUME, interrupted, reference, check_killed)

    # every epoch's losses, accuracies, distances and learning rate, bit for bit
    got, want = history(run), history(expected)
    assert [row["epoch"] for row in got] == ["0", "1", "2"]
    assert {"d_loss", "g_loss", "val_fd_refcnn", "val_kid_refcnn"} <= set(got[0])
    assert got == want
    after, before = ({k: v for k, v in json.loads((r / "metrics.json").read_text()).items()
                      if k not in TIMING} for r in (run, expected))
    assert {"test_fd_refcnn", "test_d_loss", "real_fd_refcnn", "best_val_fd_refcnn"} <= set(after)
    assert after == before and after["epochs"] == 3
    # the fixed noise and the generator: every epoch's grid and the final one, pixel for pixel
    for name in ("grids/epoch_001.png", "grids/epoch_002.png", "grids/epoch_003.png",
                 "samples_grid.png"):
        np.testing.assert_array_equal(pixels(run / name), pixels(expected / name), name)


def check_the_backup_holds_the_whole_game(run: Path) -> None:
    """The killed run's backup holds both networks, both optimizers' slots and step counts,
    the model's SeedGenerator state and the fixed noise, and puts them back."""
    from omegaconf import OmegaConf

    from kexp.recipe import prepare
    from kexp.training.backup import load, optimizer_variables, restore_variables

    saved = load(run)
    assert saved.epoch in (1, 2) and saved.step == 0
    cfg = OmegaConf.load(run / "config.yaml")
    data, model, settings = prepare(cfg)
    assert len(model.optimizers) == 2 and model.d_optimizer is not model.optimizer
    assert len(saved.model_values) == len(model.variables)
    assert len(saved.optimizer_values) == len(optimizer_variables(model)) == \
        len(model.optimizer.variables) + len(model.d_optimizer.variables)
    fresh = {n.name: [w.numpy() for w in n.weights] for n in (model.generator,
                                                               model.discriminator)}
    (noise_at,) = [i for i, v in enumerate(model.variables) if "fixed_noise" in v.path]
    np.testing.assert_array_equal(saved.model_values[noise_at], model.fixed_noise.numpy())
    restore_variables(model, saved)
    steps = math.ceil(data.spec.num_train / settings.global_batch_size) * saved.epoch
    assert int(model.optimizer.iterations.numpy()) == steps
    assert int(model.d_optimizer.iterations.numpy()) == steps  # n_critic 1
    # the draws so far: critic and generator noise every step, noise every validation step
    val_steps = math.ceil(data.spec.num_val / settings.global_batch_size) * saved.epoch
    assert model.seed_generator.state.numpy().tolist() == \
        [cfg.trainer.seed, 2 * steps + val_steps]
    for network in (model.generator, model.discriminator):  # trained weights, not fresh ones
        assert any(not np.array_equal(w.numpy(), v) for w, v in
                   zip(network.weights, fresh[network.name], strict=True)), network.name


# ------------------------------------------------------------------ 2. two replicas

# Each fit runs in one process that split its CPU into two logical devices first (it must
# happen before TensorFlow starts): MirroredStrategy over both, and the default strategy with
# the same global batch. Batch norm and dropout are off: Keras computes batch statistics and
# dropout masks per replica, so with them 2 x 32 examples are not 64 by design. The first 4
# batches of each epoch: whole global batches only (a partial one splits unevenly).
REPLICA_SCRIPT = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
# imported first: kexp.models.generative draws a Python random seed when it is imported (its
# module-level UNIT_NORMAL initializer), which prepare() would otherwise do after seeding the
# first run only, so the first model built in a process would start from other weights
import kexp.models.gan_mlp  # noqa: F401
import keras
from tests.conftest import compose_train
from kexp.recipe import prepare

def fit(loss, strategy):
    cfg = compose_train([*json.loads(sys.argv[3]), f"task.loss={loss}", *strategy])
    data, model, settings = prepare(cfg)
    steps = []

    class Steps(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            steps.append({k: float(logs[k]) for k in ("d_loss", "g_loss")})

    model.fit(data.train.take(4), epochs=2, verbose=0, shuffle=False, callbacks=[Steps()])
    return {"replicas": settings.replicas, "global_batch": settings.global_batch_size,
            "steps": steps}

found = {}
for loss in ("bce", "wgan_gp"):
    found[loss] = {"two": fit(loss, ["strategy=mirrored", "strategy.virtual_cpus=2"]),
                   "one": fit(loss, [])}
open(sys.argv[2], "w").write(json.dumps(found))
"""


@pytest.fixture(scope="module")
def replica_losses(tmp_path_factory, digits_logs) -> dict:
    tmp = with_judge(digits_logs, tmp_path_factory.mktemp("replicas"))
    args = [*TINY, "logger=none", "model.batch_norm=false", "model.dropout=0.0",
            "trainer.batch_size=64", "trainer.batch_per_replica=false",
            f"paths.log_dir={tmp / 'logs'}"]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    done = subprocess.run([sys.executable, "-c", REPLICA_SCRIPT, str(ROOT), str(tmp / "out.json"),
                           json.dumps(args)], cwd=tmp, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((tmp / "out.json").read_text())


@pytest.mark.parametrize("loss", ["bce", "wgan_gp"])
def test_two_replicas_train_like_one_with_the_same_global_batch(replica_losses, loss):
    """Step by step over 8 steps: 1e-5 relative (float32 sums in another order; the losses
    measured here agree to about 1e-7), 1e-6 absolute for a WGAN critic's loss near 0. A
    replica drawing the other's noise, or a loss or penalty scaled by the wrong replica count,
    is off by 1e-2 or more from the first step on."""
    two, one = replica_losses[loss]["two"], replica_losses[loss]["one"]
    assert (two["replicas"], one["replicas"]) == (2, 1)
    assert two["global_batch"] == one["global_batch"] == 64
    assert len(two["steps"]) == len(one["steps"]) == 8  # 2 epochs of 4 whole batches
    for step, (a, b) in enumerate(zip(two["steps"], one["steps"], strict=True)):
        for key in LOSSES:
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6), (step, key, a, b)


@pytest.mark.parametrize("sizes", [(3, 3), (3, 2)])
def test_replicas_draw_different_noise_that_makes_up_one_replicas_draw(sizes):
    """The noise each of two replicas draws in a step (the same SeedGenerator state on both):
    different rows, together the single replica's draw for the whole batch, also when a last
    partial batch splits unevenly."""
    import keras
    import tensorflow as tf

    from kexp.tasks.gan.model import GAN

    class Context:  # what GAN._rows reads of a replica context: its id and an all-reduce
        def __init__(self, replica: int) -> None:
            self.replica_id_in_sync_group = replica

        def all_reduce(self, op, value):
            return tf.constant(sizes, tf.float32)

    class Strategy:
        num_replicas_in_sync = 2

    noise = keras.Input((8,))
    generator = keras.Model(noise, keras.layers.Reshape((4, 4, 1))(keras.layers.Dense(16)(noise)))
    image = keras.Input((4, 4, 1))
    discriminator = keras.Model(image, keras.layers.Dense(1)(keras.layers.Flatten()(image)))
    gan = GAN(generator, discriminator, latent_dim=8, seed=3)
    state = gan.seed_generator.state.numpy().copy()
    whole = gan.noise(sum(sizes), (0, sum(sizes))).numpy()
    parts = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tf.distribute, "get_strategy", Strategy)
        for replica in (0, 1):
            gan.seed_generator.state.assign(state)
            patch.setattr(tf.distribute, "get_replica_context", lambda r=replica: Context(r))
            parts.append(gan.noise(sizes[replica], gan._rows(sizes[replica])).numpy())
    assert not np.allclose(parts[0][:2], parts[1][:2])
    np.testing.assert_array_equal(np.concatenate(parts), whole)


# ------------------------------------------------------------------ 3. mixed precision


def test_mixed_float16_scales_both_losses_and_trains_both_networks(digits_logs):
    import keras

    from kexp.recipe import prepare

    cfg = compose_train([*TINY, "logger=none", "trainer.precision=mixed_float16",
                         "trainer.batch_size=32", f"paths.log_dir={digits_logs}"])
    data, model, _ = prepare(cfg)
    for optimizer in (model.optimizer, model.d_optimizer):
        assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    assert model.optimizer.inner_optimizer is not model.d_optimizer.inner_optimizer
    assert model.generator.get_layer("g_dense1").compute_dtype == "float16"
    assert model.discriminator.get_layer("d_dense1").compute_dtype == "float16"
    assert {v.dtype for v in model.weights} <= {"float32", "int64", "uint32", "int32"}
    before = {n.name: [w.numpy() for w in n.trainable_weights]
              for n in (model.generator, model.discriminator)}
    logs = model.fit(data.train.take(6), epochs=1, verbose=0, shuffle=False).history
    for key in LOSSES:
        assert math.isfinite(logs[key][-1]), logs
    # the score a loss reads is float32; both optimizers stepped (loss scaling skips a step
    # whose scaled gradients overflow, never all of them)
    assert model.discriminator.outputs[0].dtype == "float32"
    for network in (model.generator, model.discriminator):
        assert any(not np.array_equal(w.numpy(), b) for w, b in
                   zip(network.trainable_weights, before[network.name], strict=True)), \
            network.name
    assert int(model.optimizer.inner_optimizer.iterations.numpy()) >= 1
    assert int(model.d_optimizer.inner_optimizer.iterations.numpy()) >= 1


# ------------------------------------------------------------------ 4. TFDS image data


@pytest.mark.parametrize(("data", "shape"), [("mnist", (28, 28, 1)), ("cifar10", (32, 32, 3))])
def test_a_dcgan_run_on_mocked_tfds_images(tmp_path, data, shape):
    import tensorflow_datasets as tfds

    from kexp.models import load_model
    from kexp.recipe import train

    cfg = compose_train(["task=gan", f"data={data}", "model=dcgan", "model.filters=4",
                         "model.latent_dim=16", "trainer.epochs=1", "trainer.batch_size=16",
                         "trainer.verbose=0", "task.num_samples=48", "task.reference_epochs=1",
                         "logger=none", f"paths.log_dir={tmp_path}"])
    with tfds.testing.mock_data(num_examples=48):
        metrics = train(cfg)
    (run,) = run_dirs(tmp_path)
    generator = load_model(run / "model.keras", safe_mode=True, compile=False)
    images = np.asarray(generator(np.zeros((2, 16), np.float32)))
    assert images.shape == (2, *shape) and -1 <= images.min() <= images.max() <= 1
    for name in ("fd_refcnn", "kid_refcnn", "cs_refcnn"):
        assert math.isfinite(metrics[f"test_{name}"]), (name, metrics)
        assert math.isfinite(metrics[f"real_{name}"]), (name, metrics)
    (row,) = history(run)
    assert all(math.isfinite(float(row[k])) for k in ("d_loss", "g_loss", "val_fd_refcnn"))
    assert pixels(run / "samples_grid.png").ndim == (2 if shape[-1] == 1 else 3)


# ------------------------------------------------------------------ 5. a search


def test_a_gan_search_completes_both_trials_judged_by_the_distance(digits_logs):
    base = [*TINY, "trainer.epochs=1", "logger=none", f"paths.log_dir={digits_logs}"]
    summary, scores, chosen = two_trial_search(base, "gan", ("val_fd_refcnn", "min"))
    assert all(math.isfinite(s) and s > 0 for s in scores), scores
    assert chosen.task._target_ == "kexp.tasks.gan.Gan" and chosen.task.loss in \
        ("bce", "lsgan", "hinge")
    assert chosen.optimizer.lr == pytest.approx(summary["best_values"]["optimizer.lr"])


# ------------------------------------------------------------------ 6. a diverging loss


@pytest.fixture(scope="module")
def diverged(tmp_path_factory, digits_logs) -> tuple[subprocess.CompletedProcess, Path]:
    """A GAN run whose SGD step of 1e6 makes its losses non-finite in the first epoch, with a
    real MLflow store."""
    cwd = with_judge(digits_logs, tmp_path_factory.mktemp("diverged"))
    done = run_kexp([*TINY, "trainer.epochs=1", "optimizer=sgd", "optimizer.lr=1e6",
                     "optimizer.momentum=0.0", "logger.log_model=false"], cwd)
    return done, cwd / "logs"


def test_a_diverging_gan_fails_the_run(diverged):
    done, logs = diverged
    assert done.returncode == 1, done.stderr[-3000:]
    store = client(logs)
    (run,) = store.search_runs([store.get_experiment_by_name("kexp").experiment_id])
    assert run.info.status == "FAILED"
    (folder,) = run_dirs(logs)
    assert not (folder / "metrics.json").exists()


def test_a_diverging_gan_says_so_in_one_line(diverged):
    done, _ = diverged
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    said = [line for line in done.stderr.splitlines() if line.startswith("kexp: error:")]
    assert said == done.stderr.strip().splitlines()[-1:], done.stderr[-3000:]
    assert said[0].startswith(("kexp: error: non-finite d_loss",
                               "kexp: error: non-finite g_loss")), said
    assert "at epoch 1" in said[0] and "optimizer.lr" in said[0]
