"""`python -m kexp.export`: an image and a text run exported as a SavedModel and a TFLite file
give the Keras model's predictions on raw inputs (uint8 / float images, strings); bad input
is one line. Two tiny runs (one epoch) are trained once per session."""

from __future__ import annotations

import csv
import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from tests.conftest import cfg_job_without_tensorflow, compose_train, run_kexp

TINY = ["trainer.epochs=1", "trainer.verbose=0", "callbacks=none", "logger=none"]
WORDS = {"pos": "good great fine nice happy".split(), "neg": "bad awful poor sad ugly".split()}


def _train(overrides: list[str], log_dir: Path) -> Path:
    from kexp.recipe import train

    cfg = compose_train([*TINY, f"paths.log_dir={log_dir}", *overrides])
    train(cfg)
    return Path(cfg.paths.output_dir)


def _texts(path: Path) -> Path:
    """200 six-word reviews, capitalized and with punctuation (standardizing has work)."""
    rng = random.Random(0)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for i in range(200):
            label = "pos" if i % 2 else "neg"
            words = [rng.choice([*WORDS[label], "the", "a", "movie"]) for _ in range(6)]
            writer.writerow([" ".join(words).capitalize() + "!", label])
    return path


@pytest.fixture(scope="session")
def image_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _train(["data=digits", "model=mlp", "model.hidden_units=[16]"],
                  tmp_path_factory.mktemp("export_image") / "logs")


@pytest.fixture(scope="session")
def text_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("export_text")
    return _train(["data=text_csv", f"data.path={_texts(root / 'texts.csv')}",
                   "data.sequence_length=8", "model=lstm", "model.units=8",
                   "model.embedding_dim=8"], root / "logs")


def _bundle(run: Path):
    """The run's data as kexp.eval rebuilds them, and its Keras model's test predictions."""
    from kexp import data as datasets
    from kexp.models import load_model

    cfg = OmegaConf.load(run / "config.yaml")
    data = datasets.load(cfg.data, global_batch_size=64, seed=cfg.trainer.seed)
    model = load_model(run / "model.keras", compile=False)
    return data, np.concatenate([np.asarray(model(x, training=False)) for x, _ in data.test])


def _raw_x(data) -> np.ndarray:
    return np.concatenate([x.numpy() for x, _ in data.raw_test.batch(512)])


def test_image_saved_model_and_tflite_take_raw_pixels(image_run: Path):
    import tensorflow as tf

    from kexp.exporting import export

    (saved,) = export(image_run, "saved_model")
    assert saved.path == image_run / "export" / "saved_model" and saved.size_bytes > 0
    assert saved.max_abs_diff <= 1e-4 and saved.argmax_agreement == 1.0
    data, expected = _bundle(image_run)
    raw = _raw_x(data)  # digits: float32 pixel values 0..16, whole numbers
    served = tf.saved_model.load(str(saved.path))
    for name, x in (("serving_default", raw), ("serve_uint8", raw.astype(np.uint8))):
        got = served.signatures[name](inputs=tf.constant(x))
        np.testing.assert_allclose(got["predictions"].numpy(), expected, atol=1e-5)
        assert (got["class_id"].numpy() == expected.argmax(-1)).all()

    (lite,) = export(image_run, "tflite")
    assert lite.path.name == "model.tflite" and lite.max_abs_diff <= 1e-4
    assert lite.argmax_agreement == 1.0 and lite.size_bytes < saved.size_bytes


def test_text_saved_model_takes_strings_and_tflite_token_ids(text_run: Path):
    import tensorflow as tf

    from kexp.exporting import export

    (saved,) = export(text_run, "saved_model")
    assert saved.max_abs_diff <= 1e-4 and saved.argmax_agreement == 1.0
    data, expected = _bundle(text_run)
    served = tf.saved_model.load(str(saved.path)).signatures["serving_default"]
    got = served(inputs=tf.constant(_raw_x(data)))["predictions"].numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)
    one = served(inputs=tf.constant(["Good, GREAT movie!!"]))["predictions"].numpy()
    assert one.shape == (1, 2) and abs(one.sum() - 1) < 1e-5

    (lite,) = export(text_run, "tflite", quantize="float16")
    assert lite.path.name == "model-float16.tflite" and lite.batch == 1  # an LSTM
    assert lite.max_abs_diff <= 2e-2 and lite.argmax_agreement >= 0.95
    described = json.loads((text_run / "export" / "text_input.json").read_text())
    assert described["sequence_length"] == 8
    assert (text_run / "export" / described["vocabulary"]).read_text() == \
        (text_run / "vocabulary.txt").read_text()


def test_the_command_prints_size_and_agreement_and_bad_input_is_one_line(image_run: Path,
                                                                          tmp_path: Path):
    done = run_kexp([f"run_dir={image_run}", "format=tflite", "quantize=dynamic"], tmp_path,
                    module="kexp.export")
    assert done.returncode == 0, done.stderr
    (line,) = done.stdout.strip().splitlines()
    assert "model-dynamic.tflite" in line and "KiB" in line and "same_class=" in line, line

    run = f"run_dir={image_run}"
    for args, words in (([run, "format=onnx"], ["format", "'onnx'", "saved_model, tflite"]),
                        ([run, "quantize=float16"], ["quantize", "format=tflite"]),
                        ([f"run_dir={tmp_path}"], ["run_dir", "model.keras"])):
        done = run_kexp(args, tmp_path, module="kexp.export")
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        (line,) = done.stderr.strip().splitlines()
        assert line.startswith("kexp: error:") and all(w in line for w in words), line


def test_tasks_without_a_served_form_are_refused(image_run: Path, tmp_path: Path):
    from kexp.errors import KexpError
    from kexp.exporting import export

    shutil.copy(image_run / "model.keras", tmp_path)
    cfg = OmegaConf.load(image_run / "config.yaml")
    cfg.task._target_ = "kexp.tasks.gan.Gan"
    OmegaConf.save(cfg, tmp_path / "config.yaml")
    with pytest.raises(KexpError, match="task=gan run; kexp.export takes task=classification "
                                        "and task=regression runs only"):
        export(tmp_path, "saved_model")


def test_config_composes_without_tensorflow():
    cfg = cfg_job_without_tensorflow("kexp.export", ["run_dir=some/run", "format=tflite"])
    assert (cfg.format, cfg.quantize, cfg.batch_size) == ("tflite", None, None)


def test_a_regression_run_exports_too(tmp_path: Path):
    from kexp.exporting import export

    run = _train(["data=diabetes", "task=regression", "model=mlp"], tmp_path / "logs")
    for fmt in ("saved_model", "tflite"):
        (done,) = export(run, fmt)
        assert done.argmax_agreement is None and done.max_abs_diff <= done.tolerance
        assert "same_class" not in done.line()
