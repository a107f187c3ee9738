"""`python -m kexp.stylize` and kexp/style_transfer.py: neural style transfer on tiny generated
images with an untrained VGG (weights=null: no download, and a 32x32 VGG-16 step takes
milliseconds). The losses fall under both optimisers, the files and the MLflow run appear, and
every mistake, offline weights=imagenet included, is one line on stderr before TensorFlow loads.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import pytest
from PIL import Image

from kexp import style_transfer as st
from kexp.cli import compose, config_dir
from kexp.errors import KexpError
from tests.conftest import cfg_job_without_tensorflow, run_kexp

SIZE = 32
# shallow layers: an untrained VGG's deep features hardly depend on the image (its random
# weights shrink the signal layer by layer), and the network is cut after block 2
SHALLOW = {"content_layers": ["block2_conv2"], "style_layers": ["block1_conv1", "block2_conv1"]}
UNTRAINED = {"weights": None, "image_size": SIZE, **SHALLOW}


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A colour gradient with a square (content) and diagonal stripes (style), as PNG files."""
    folder = tmp_path_factory.mktemp("images")
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    content = np.stack([x * 8, y * 8, np.full_like(x, 96)], -1)
    content[8:20, 10:22] = (250, 240, 30)
    stripes = (np.sin((x + y) / 1.5) > 0)[..., None]
    style = np.where(stripes, (20, 40, 200), (230, 120, 20))
    paths = folder / "content.png", folder / "style.png"
    for array, path in zip((content, style), paths, strict=True):
        Image.fromarray(array.astype(np.uint8)).save(path)
    return paths


def test_gram_matrix_matches_numpy():
    features = np.random.default_rng(0).normal(size=(2, 3, 5, 4)).astype(np.float32)
    flat = features.reshape(2, 15, 4)
    expected = np.einsum("bpc,bpd->bcd", flat, flat) / 15  # averaged over the 3*5 positions
    np.testing.assert_allclose(st.gram_matrix(features).numpy(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(st.gram_matrix(features[0]).numpy(), expected[0], rtol=1e-5,
                               atol=1e-6)  # unbatched (h, w, c) too


@pytest.mark.parametrize("loss, weights, init", [
    ("content_loss", {"content_weight": 1.0, "style_weight": 0.0, "tv_weight": 0.0}, "noise"),
    ("style_loss", {"content_weight": 0.0, "style_weight": 1.0, "tv_weight": 0.0}, "content"),
    ("tv_loss", {"content_weight": 0.0, "style_weight": 0.0, "tv_weight": 1.0}, "noise"),
])
def test_each_loss_falls_when_it_alone_is_weighted(images, loss, weights, init):
    steps = 6
    result = st.stylize(*images, **UNTRAINED, **weights, init=init, steps=steps,
                        learning_rate=20)  # an int, as `learning_rate=20` composes
    history = result.history[loss]
    assert len(history) == steps + 1 and result.steps == steps  # the start, then each update
    assert history[-1] < 0.9 * history[0], history
    assert result.history["total_loss"] == history  # the other parts weigh 0


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_both_optimizers_lower_the_total_and_write_the_files(images, tmp_path, optimizer):
    logged = []
    result = st.stylize(*images, **UNTRAINED, optimizer=optimizer, steps=6, init="noise",
                        content_weight=1.0, style_weight=1.0, tv_weight=1.0,
                        on_step=lambda step, row: logged.append((step, row)))
    total = result.history["total_loss"]
    assert total[-1] < total[0]
    assert result.image.dtype == np.uint8 and result.image.shape == (SIZE, SIZE, 3)
    assert [s for s, _ in logged] == list(range(len(total)))
    assert logged[-1][1]["total_loss"] == pytest.approx(
        sum(logged[-1][1][k] for k in ("content_loss", "style_loss", "tv_loss")))
    files = st.write_outputs(result, tmp_path / "out")
    assert {p.name for p in files.values()} == {"stylized.png", "losses.csv", "loss_curve.png"}
    assert np.array_equal(np.asarray(Image.open(files["image"])), result.image)
    with files["losses"].open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(total) and float(rows[-1]["total_loss"]) == pytest.approx(total[-1])
    assert files["curve"].read_bytes().startswith(b"\x89PNG")


def test_a_wide_picture_keeps_its_aspect(tmp_path):
    wide = tmp_path / "wide.png"
    Image.fromarray(np.zeros((30, 90, 3), np.uint8)).save(wide)
    assert st.load_image(wide, "content", 48).shape == (16, 48, 3)  # the longer side is 48
    with pytest.raises(KexpError, match="image_size: 32 makes content 32x11"):
        st.load_image(wide, "content", 32)  # VGG needs 16 pixels on the shorter side


def test_end_to_end_as_a_subprocess_and_as_one_mlflow_run(images, tmp_path):
    """Two runs at once, to overlap their start-up (TensorFlow's import in the subprocess,
    MLflow's creation of a new SQLite store here): `python -m kexp.stylize` with logger=none,
    and the same job in this process logging to a real SQLite store."""
    from kexp.cli.stylize import stylize

    out = tmp_path / "result"
    command = subprocess.Popen(
        [sys.executable, "-m", "kexp.stylize", f"content={images[0]}", f"style={images[1]}",
         "weights=null", f"image_size={SIZE}", "steps=3", "optimizer=lbfgs", "logger=none",
         f"out={out}"], cwd=tmp_path, env=user_env(tmp_path), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)

    try:
        # the default store, <paths.log_dir>/mlflow.db, keeps its artifacts beside it (a store
        # named by logger.tracking_uri would put them in ./mlruns of the checkout)
        store = tmp_path / "store"
        cfg = compose(config_dir(), "stylize", [
            f"content={images[0]}", f"style={images[1]}", "weights=null", f"image_size={SIZE}",
            "steps=3", "content_layers=[block2_conv2]", "style_layers=[block1_conv1]",
            "logger.tracking_uri=null", f"paths.log_dir={store}", "run_name=tiny"])
        line = stylize(cfg)
        written = Path(line.split()[2])
        assert line.startswith("kexp.stylize: wrote ") and "(steps 3, loss " in line
        assert written.parent.parent == store / "stylize" and written.is_file()  # the default out
        client = mlflow.MlflowClient(f"sqlite:///{store}/mlflow.db")
        runs = client.search_runs([client.get_experiment_by_name("stylize").experiment_id])
        assert len(runs) == 1
        run = runs[0]
        assert run.info.status == "FINISHED" and run.info.run_name == "tiny"
        assert run.data.params["network"] == "vgg16" and run.data.params["steps"] == "3"
        assert run.data.tags["kexp.command"] == "stylize"
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "total_loss")]
        assert steps == [0, 1, 2, 3]
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"stylized.png", "loss_curve.png", "losses.csv"} <= artifacts
        stdout, stderr = command.communicate(timeout=300)
    finally:  # a failed check above must not leave the command running
        if command.poll() is None:
            command.kill()
            command.communicate()
    assert command.returncode == 0, stderr[-3000:]
    last = stdout.strip().splitlines()[-1]
    assert last.startswith(f"kexp.stylize: wrote {out / 'stylized.png'} (steps "), last
    assert " -> " in last
    assert {p.name for p in out.iterdir()} == {"stylized.png", "loss_curve.png", "losses.csv"}
    assert not (tmp_path / "logs").exists()  # logger=none: no store


def user_env(cwd: Path) -> dict[str, str]:
    """The environment `run_kexp` runs a command in."""
    env = {**os.environ, "KEXP_LOG_DIR": str(cwd / "logs")}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("KEXP_DEBUG", None)
    return env


def test_optimizer_is_short_for_solver_and_help_needs_no_tensorflow():
    cfg = cfg_job_without_tensorflow("kexp.stylize", ["content=a.jpg", "style=b.jpg",
                                                      "optimizer=lbfgs", "network=vgg19"])
    assert cfg.solver == "lbfgs" and cfg.network == "vgg19" and cfg.weights == "imagenet"


# each a typo a user could make: (arguments, words the one line must contain); `{dir}` is the
# run's own folder, which holds notes.txt
BAD_INPUT = {
    "missing content": (["content={dir}/missing.jpg"], ["content", "missing.jpg", "not exist"]),
    "content not an image": (["content={dir}/notes.txt"], ["content", "notes.txt", "not an image"]),
    "missing weights file": (["weights={dir}/nope.h5"],
                             ["weights", "nope.h5", "does not exist", "weights=null"]),
    "unknown network": (["network=vgg99"], ["network", "vgg99", "vgg16", "vgg19"]),
    "unknown optimizer": (["optimizer=bogus"], ["optimizer", "bogus", "adam", "lbfgs"]),
    "unknown layer": (["style_layers=[block9_conv1]"],
                      ["style_layers", "block9_conv1", "block5_conv1"]),
    "no content": (None, ["content", "required"]),
}


@pytest.mark.parametrize("name", list(BAD_INPUT))
def test_bad_input_is_one_line_and_exit_2(images, tmp_path, name):
    args, words = BAD_INPUT[name]
    (tmp_path / "notes.txt").write_text("not a picture")
    given = [a.format(dir=tmp_path) for a in args or []]
    keys = {a.partition("=")[0] for a in given}
    defaults = [f"content={images[0]}", f"style={images[1]}", "weights=null"] if args else \
        [f"style={images[1]}"]
    done = run_kexp([a for a in defaults if a.partition("=")[0] not in keys] + given, tmp_path,
                    module="kexp.stylize", timeout=60)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kexp: error: "), done.stderr
    assert all(w in lines[0] for w in words), lines[0]
    assert not (tmp_path / "logs").exists()  # nothing was started


def test_offline_imagenet_weights_fail_in_seconds(images, tmp_path):
    """Keras would try the download and hang; kexp looks in the cache, probes, and says what
    to do. The machine running the tests has no internet; one that has is skipped."""
    if st.download_reachable():
        pytest.skip("storage.googleapis.com is reachable: Keras would download the weights")
    started = time.monotonic()
    done = run_kexp([f"content={images[0]}", f"style={images[1]}"], tmp_path,
                    module="kexp.stylize", timeout=60,
                    env={"KERAS_HOME": str(tmp_path / "empty_keras_home")})
    assert time.monotonic() - started < 15
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    for words in ("weights: imagenet", "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
                  "weights=FILE", "weights=null", str(tmp_path / "empty_keras_home" / "models")):
        assert words in lines[0], lines[0]


def test_imagenet_weights_come_from_the_keras_cache_without_a_probe(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    probes = []
    monkeypatch.setattr(st, "download_reachable", lambda *a: probes.append(a) or False)
    with pytest.raises(KexpError, match="weights=null"):
        st.resolve_weights("vgg19", "imagenet")  # not cached, probe says offline
    assert len(probes) == 1
    cached = tmp_path / "models" / "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
    cached.parent.mkdir()
    cached.write_bytes(b"")
    assert st.resolve_weights("vgg19", "imagenet") == str(cached)  # passed by path: no download
    assert len(probes) == 1
    assert st.resolve_weights("vgg19", None) is None


def test_the_library_does_not_import_tensorflow_for_its_checks():
    code = ("import sys; from kexp import style_transfer as st\n"
            "st.check_settings(network='vgg19', style_layers=['block5_conv4'])\n"
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
