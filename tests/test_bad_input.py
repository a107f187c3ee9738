"""Malformed invocations, typed as a user would: each fails fast with one line naming the problem.

The one table of bad input for `python -m kexp`, `kexp.eval` and `kexp.tune`. Every row runs as
a real subprocess in its own directory with the default MLflow logger, and must exit non-zero
within seconds with exactly one `kexp: error:` line on stderr (no traceback) and leave no
MLflow run RUNNING. Rows of stage `config` fail before TensorFlow is imported (~0.5 s each) and
must not even create the log directory; `data` rows fail while reading data (~6 s: TensorFlow
loads first), `run` rows after the MLflow run started.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
from PIL import Image

from tests.conftest import run_kexp

SECONDS = 60  # generous: the point is that nothing hangs


class Bad(NamedTuple):
    args: list[str]  # `{files}` stands for the module's folder of broken inputs
    words: list[str]  # the one line must contain each
    module: str = "kexp"
    stage: str = "config"  # config: before TensorFlow; data: while loading; run: after start
    code: int = 2  # KexpError; 1: a run that started and failed


BAD_INPUT = [
    # unknown config groups and options
    Bad(["model=vgx"], ["model", "vgx", "vgg, vgg11"]),
    Bad(["data=cifar11"], ["data", "cifar11", "cifar10"]),
    Bad(["optimizer=adamm"], ["optimizer", "adamm", "adam"]),
    Bad(["tuner=nosuch"], ["tuner", "nosuch", "hyperband"], module="kexp.tune"),
    Bad(["search=nosuch"], ["search", "nosuch", "lr_dropout_l2_optimizer"], module="kexp.tune"),
    # misspelled keys, top-level and nested
    Bad(["foo=bar"], ["foo", "--cfg job"]),
    Bad(["trainer.epoch=3"], ["trainer.epoch"]),
    Bad(["model.hiden_units=[64]"], ["model.hiden_units"]),
    Bad(["callbacks.early_stoping.patience=3"], ["callbacks.early_stoping.patience"]),
    Bad(["model=vgg", "model.dept=16"], ["model.dept"]),
    Bad(["run_dir={files}/no_model", "batch_sise=8"], ["batch_sise"], module="kexp.eval"),
    # wrong types
    Bad(["trainer.epochs=abc"], ["trainer.epochs", "integer", "abc"]),
    Bad(["trainer.batch_size=2.5"], ["trainer.batch_size", "integer", "2.5"]),
    Bad(["data.val_fraction=abc"], ["data.val_fraction"]),
    Bad(["model.hidden_units=64"], ["model.hidden_units", "list"]),
    Bad(["tags=abc"], ["tags", "mapping"]),
    Bad(["run_name=[1,2]"], ["run_name", "string"]),
    Bad(["kexp.allow_targets=mypkg"], ["kexp.allow_targets", "list"]),
    # values out of range: negative or zero sizes, fractions, choices
    Bad(["trainer.epochs=0"], ["trainer.epochs", "positive"]),
    Bad(["trainer.batch_size=-8"], ["trainer.batch_size", "-8"]),
    Bad(["optimizer.lr=-0.1"], ["optimizer.lr"]),
    Bad(["optimizer.weight_decay=-1"], ["optimizer.weight_decay", ">= 0"]),
    Bad(["model.dropout=1.5"], ["model.dropout"]),
    Bad(["model.hidden_units=[0]"], ["model.hidden_units", "positive"]),
    Bad(["model=cnn", "model.filters=[32,-1]"], ["model.filters", "positive"]),
    Bad(["data.subset=0"], ["data.subset", "positive"]),
    Bad(["callbacks.early_stopping.patience=-1"], ["callbacks.early_stopping.patience"]),
    Bad(["trainer.precision=fp16"], ["trainer.precision", "mixed_float16"]),
    Bad(["data=image_folder", "data.path={files}/images", "data.image_size=[0,8]"],
        ["data.image_size", "[H, W]"]),
    Bad(["tuner.max_trials=0"], ["tuner.max_trials", "positive"], module="kexp.tune"),
    Bad(["tuner.objective=val_acc"], ["tuner.objective", "val_accuracy"], module="kexp.tune"),
    Bad(["run_dir={files}/no_model", "batch_size=0"], ["batch_size", "positive"],
        module="kexp.eval"),
    # missing paths
    Bad(["data=npz"], ["data.path", "required"]),
    Bad(["data=npz", "data.path={files}/missing.npz"], ["data.path", "missing.npz", "exist"]),
    Bad(["data=image_folder", "data.path={files}/missing_dir"], ["data.path", "exist"]),
    Bad(["data=text_csv", "data.path={files}/missing.csv"], ["data.path", "exist"]),
    Bad(["data=text_csv", "data.path={files}/texts.csv", "data.test_path={files}/nope.csv"],
        ["data.test_path", "nope.csv"]),
    Bad(["--config-path", "{files}/missing_conf"], ["--config-path", "missing_conf"]),
    Bad(["paths.log_dir={files}/texts.csv/logs"], ["paths.log_dir", "directory"]),
    Bad([], ["run_dir", "required"], module="kexp.eval"),
    Bad(["run_dir={files}/missing_run"], ["run_dir", "config.yaml"], module="kexp.eval"),
    Bad(["run_dir={files}/no_model"], ["run_dir", "model.keras"], module="kexp.eval"),
    # broken data files: read, so TensorFlow is loaded first
    Bad(["data=npz", "data.path={files}/corrupt.npz"], ["data.path", "not a readable .npz"],
        stage="data"),
    Bad(["data=npz", "data.path={files}/no_y_test.npz"], ["data.path", "y_test"], stage="data"),
    Bad(["data=npz", "data.path={files}/label_out_of_range.npz"],
        ["data.path", "y_test has label 7", "0..K-1"], stage="data"),
    Bad(["data=image_folder", "data.path={files}/empty_dir"], ["data.path", "no class"],
        stage="data"),
    Bad(["data=image_folder", "data.path={files}/corrupt_images"], ["data.path", "bad.png"],
        stage="data"),
    # a model that reads the other kind of data
    Bad(["model=lstm", "data=digits"], ["model=lstm", "images", "data=text_csv"], stage="data"),
    Bad(["model=cnn", "data=text_csv", "data.path={files}/texts.csv"],
        ["model=cnn", "token sequences", "model=lstm"], stage="data"),
    # a run that starts, then fails: it must end FAILED, not stay RUNNING
    Bad(["data.scale=1e-30", "trainer.epochs=1", "callbacks=none", "model.hidden_units=[8]"],
        ["non-finite loss"], stage="run", code=1),
]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Broken inputs, each small: npz archives, image folders, a CSV and a half-written run."""
    root = tmp_path_factory.mktemp("bad_input")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (20, 8, 8), dtype=np.uint8)
    y = np.arange(20) % 2
    (root / "corrupt.npz").write_bytes(b"PK\x03\x04" + b"not a zip archive" * 8)
    np.savez(root / "no_y_test.npz", x_train=x, y_train=y, x_test=x[:4])
    np.savez(root / "label_out_of_range.npz", x_train=x, y_train=y, x_test=x[:4],
             y_test=np.array([0, 1, 7, 1]))
    (root / "empty_dir").mkdir()
    for name in ("cat", "dog"):
        (root / "images" / name).mkdir(parents=True)
        (root / "corrupt_images" / name).mkdir(parents=True)
        for i in range(3):
            pixels = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / "images" / name / f"{i}.png")
            Image.fromarray(pixels).save(root / "corrupt_images" / name / f"{i}.png")
    (root / "corrupt_images" / "cat" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\ntruncated")
    rows = [f"word{i % 5} other{i % 3} thing,{i % 2}" for i in range(30)]
    (root / "texts.csv").write_text("text,label\n" + "\n".join(rows) + "\n")
    (root / "no_model").mkdir()
    (root / "no_model" / "config.yaml").write_text("data: {source: digits}\n")
    return root


@pytest.mark.parametrize("bad", BAD_INPUT, ids=[f"{b.module} {' '.join(b.args)}".strip()
                                               for b in BAD_INPUT])
def test_bad_input_is_one_line_and_leaves_no_running_run(workdir, files, bad):
    args = [a.format(files=files) for a in bad.args]
    started = time.monotonic()
    done = run_kexp(args, workdir, module=bad.module, timeout=2 * SECONDS)
    seconds = time.monotonic() - started

    assert done.returncode == bad.code, done.stderr
    assert seconds < SECONDS
    statuses = _run_statuses(workdir / "logs" / "mlflow.db")
    assert "RUNNING" not in statuses
    if bad.stage == "config":
        assert not (workdir / "logs").exists(), "a bad config must not start a run"
    if bad.stage == "run":
        assert statuses == ["FAILED"]
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kexp: error:"), done.stderr
    for word in bad.words:
        assert word in lines[0]


def test_kexp_debug_shows_the_traceback(workdir):
    # run_kexp drops KEXP_DEBUG from the environment on purpose, so this one is spelled out
    env = {**os.environ, "KEXP_LOG_DIR": str(workdir / "logs"), "KEXP_DEBUG": "1"}
    done = subprocess.run([sys.executable, "-m", "kexp", "trainer.epochs=0"], cwd=workdir,
                          env=env, capture_output=True, text=True, timeout=SECONDS)
    assert done.returncode != 0
    assert "Traceback" in done.stderr and "KexpError: trainer.epochs" in done.stderr


def _run_statuses(db: Path) -> list[str]:
    """The status of every MLflow run in a SQLite store (none when it was never created)."""
    if not db.exists():
        return []
    with closing(sqlite3.connect(db)) as store:
        return [status for (status,) in store.execute("SELECT status FROM runs")]
