"""Resume after a kill: a real `python -m kexp` process is SIGKILLed mid-epoch, and the run,
continued in its own directory and MLflow run, ends exactly as an uninterrupted one."""

from __future__ import annotations

import csv
import errno
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_kexp
from tests.test_e2e import client, run_dirs

# 162 steps an epoch (~1 s here): a kill 0.2 s after "Epoch k/" lands inside epoch k, or on an
# idle machine in a later one: both must resume the same
ARGS = ["trainer.epochs=3", "trainer.deterministic=true", "trainer.batch_size=8",
        "logger.log_model=false"]


def killed_at(args: list[str], epoch_line: str, cwd: Path) -> None:
    """Start `python -m kexp args` and SIGKILL it 0.2 s after it prints `epoch_line`."""
    env = {**os.environ, "KEXP_LOG_DIR": str(cwd / "logs")}
    env.pop("MLFLOW_TRACKING_URI", None)
    process = subprocess.Popen([sys.executable, "-m", "kexp", *args], cwd=cwd, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in process.stdout:
            if line.startswith(epoch_line):
                time.sleep(0.2)
                break
        else:
            pytest.fail(f"the run ended before {epoch_line!r}")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        process.stdout.close()


def killed_and_resumed(args: list[str], interrupted: Path, reference: Path,
                       check_killed: Callable[[Path], None] | None = None) -> tuple[Path, Path]:
    """Run `python -m kexp args` in `reference` while a copy in `interrupted` is SIGKILLed in
    epoch 2 (`check_killed` sees its run dir then) and resumed; returns the resumed run and
    the uninterrupted one. Both run at once: with deterministic ops the load changes no number."""
    uninterrupted = subprocess.Popen(
        [sys.executable, "-m", "kexp", *args], cwd=reference, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True,
        env={**{k: v for k, v in os.environ.items() if k != "KEXP_DEBUG"},
             "KEXP_LOG_DIR": str(reference / "logs")})
    try:
        killed_at(args, "Epoch 2/", interrupted)
        (run,) = run_dirs(interrupted / "logs")
        assert (run / "backup").is_dir() and 1 <= len(history(run)) < 3
        assert not (run / "metrics.json").exists()
        if check_killed is not None:
            check_killed(run)
        done = run_kexp([f"resume={run}"], interrupted)
        assert done.returncode == 0, done.stderr[-3000:]
        assert run_dirs(interrupted / "logs") == [run] and not (run / "backup").exists()
        _, errors = uninterrupted.communicate(timeout=600)
    finally:
        uninterrupted.kill()
        uninterrupted.wait()
    assert uninterrupted.returncode == 0, errors[-3000:]
    (expected,) = run_dirs(reference / "logs")
    return run, expected


def history(run: Path) -> list[dict[str, str]]:
    with open(run / "history.csv") as f:
        return list(csv.DictReader(f))


def test_a_killed_run_resumes_to_the_uninterrupted_result(tmp_path):
    reference, interrupted = tmp_path / "reference", tmp_path / "interrupted"
    reference.mkdir(), interrupted.mkdir()
    done = run_kexp(ARGS, reference)
    assert done.returncode == 0, done.stderr
    (expected,) = run_dirs(reference / "logs")

    killed_at(ARGS, "Epoch 2/", interrupted)
    (run,) = run_dirs(interrupted / "logs")
    run_id = (run / "mlflow_run_id").read_text().strip()
    assert (run / "backup" / "state.npz").is_file() and 1 <= len(history(run)) < 3
    done = run_kexp([f"resume={run}"], interrupted)
    assert done.returncode == 0, done.stderr

    assert run_dirs(interrupted / "logs") == [run]  # no second directory
    assert not (run / "backup").exists()  # a finished run keeps no backup
    got, want = (json.loads((r / "metrics.json").read_text()) for r in (run, expected))
    assert got["epochs"] == 3
    for key in ("test_accuracy", "test_loss", "best_val_accuracy", "best_epoch"):
        assert got[key] == want[key], key  # bit for bit: trainer.deterministic=true
    assert [row["epoch"] for row in history(run)] == ["0", "1", "2"]
    assert history(run) == history(expected)

    mlflow = client(interrupted / "logs")
    (only,) = mlflow.search_runs(mlflow.search_experiments()[0].experiment_id)
    assert only.info.run_id == run_id and only.info.status == "FINISHED"
    for key in ("loss", "val_accuracy", "learning_rate"):
        steps = [m.step for m in mlflow.get_metric_history(run_id, key)]
        assert sorted(steps) == [0, 1, 2], (key, steps)  # each epoch once, none missing
    assert only.data.metrics["test_accuracy"] == want["test_accuracy"]


def test_resume_mistakes_are_one_line(tmp_path):
    finished = tmp_path / "finished"
    finished.mkdir()
    (finished / "config.yaml").write_text("trainer: {}\n")
    (finished / "metrics.json").write_text("{}\n")
    for arg, words in ((f"resume={tmp_path / 'nowhere'}", "not a directory"),
                       (f"resume={tmp_path}", "no config.yaml"),
                       (f"resume={finished}", "finished run")):
        done = run_kexp([arg], tmp_path, timeout=60)
        assert done.returncode == 2, done.stderr
        assert done.stderr.strip().count("\n") == 0 and words in done.stderr, done.stderr


def _tiny_fit(tmp_path: Path, epochs: int, backup=None, callbacks=()):
    import keras

    from kexp.training.backup import RunBackup

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dropout(0.3), keras.layers.Dense(2)])
    model.compile(optimizer="adam",
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    backup = backup or RunBackup(tmp_path)
    backup.track(list(callbacks))
    model.fit(x, y, batch_size=16, epochs=epochs, verbose=0, validation_data=(x, y),
              callbacks=[*callbacks, backup])
    return model, backup


def test_backup_restores_every_variable_and_the_callbacks_state(tmp_path):
    import keras

    from kexp.training.backup import load, restore_variables

    stopper = keras.callbacks.EarlyStopping(patience=5, restore_best_weights=True)
    model, _ = _tiny_fit(tmp_path, 3, callbacks=[stopper])
    saved = load(tmp_path)
    assert saved.epoch == 3 and saved.step == 0 and len(saved.history["loss"]) == 3
    assert saved.callbacks[0]["best"] == stopper.best and len(saved.best_weights) == 4
    fresh, _ = _tiny_fit(tmp_path / "other", 1)
    restore_variables(fresh, saved)
    # weights, optimizer moments and step count, and the dropout layer's seed state
    for a, b in zip(fresh.variables + fresh.optimizer.variables,
                    model.variables + model.optimizer.variables, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert any("seed_generator" in v.path for v in fresh.variables)


def test_a_step_backup_holds_the_state_inside_an_epoch(tmp_path):
    import keras

    from kexp.training.backup import RunBackup, load

    class Crash(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if self.model.optimizer.iterations.numpy() == 7:  # epoch 2, step 3 of 4
                raise RuntimeError("the machine went away")

    with pytest.raises(RuntimeError):
        _tiny_fit(tmp_path, 3, backup=RunBackup(tmp_path, every_n_steps=2),
                  callbacks=[Crash()])
    saved = load(tmp_path)
    assert (saved.epoch, saved.step) == (1, 2)  # the last backup: epoch 2 (0-based 1), step 2
    assert len(saved.history["loss"]) == 1
    iterations = saved.optimizer_values[0]  # the optimizer's step count comes first
    assert int(iterations) == 6


def test_a_failed_backup_write_keeps_the_previous_backup(tmp_path, monkeypatch):
    from kexp.training import backup as module

    _tiny_fit(tmp_path, 2)
    before = (tmp_path / "backup" / "state.npz").read_bytes()

    def disk_full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(module.os, "fsync", disk_full)
    _, backup = _tiny_fit(tmp_path, 3, backup=module.RunBackup(tmp_path))  # it warns, goes on
    assert backup.history["loss"] and len(backup.history["loss"]) == 3
    assert (tmp_path / "backup" / "state.npz").read_bytes() == before
    assert [p.name for p in (tmp_path / "backup").iterdir()] == ["state.npz"]  # no temp left


def test_a_failed_checkpoint_write_keeps_the_previous_best_model(tmp_path, monkeypatch):
    import keras

    from kexp.training.callbacks import AtomicCheckpoint

    path = tmp_path / "model.keras"
    checkpoint = AtomicCheckpoint(str(path), monitor="loss", mode="min", save_best_only=True)
    model, _ = _tiny_fit(tmp_path, 1, callbacks=[checkpoint])
    good = path.read_bytes()

    def save_then_fail(self, filepath, *args, **kwargs):
        Path(filepath).write_bytes(b"half a zip")  # what a full disk leaves behind
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(keras.Model, "save", save_then_fail)
    checkpoint.best = float("inf")  # the next epoch is "better": it tries to save
    model.fit(np.zeros((16, 4), "float32"), np.zeros(16, "int32"), epochs=1, verbose=0,
              callbacks=[checkpoint])
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".keras"] == ["model.keras"]
