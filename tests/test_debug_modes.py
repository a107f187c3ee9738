"""The debug modes (conf/debug): debug=overfit memorizes a few batches and says so in
metrics.json, debug=profile leaves a TensorFlow profiler trace in the run directory,
debug=limit is a few batches for a few epochs; and a run prints its config as a tree when
trainer.verbose > 0, while `--cfg job` stays YAML."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from omegaconf import DictConfig, OmegaConf

from kexp.config.tree import show_config
from kexp.training import debug
from tests.conftest import cfg_job_without_tensorflow, compose_train, run_kexp

QUIET = ["logger=none", "trainer.verbose=0"]


def _train(log_dir: Path, overrides: list[str]) -> tuple[dict, Path]:
    from kexp.recipe import train

    cfg = compose_train([*overrides, *QUIET, f"paths.log_dir={log_dir}"])
    metrics = train(cfg)
    return metrics, Path(cfg.paths.output_dir)


def test_overfit_reaches_its_threshold_on_digits(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="kexp"):
        metrics, out = _train(tmp_path, ["debug=overfit", "model=mlp", "data=digits"])
    assert metrics["overfit_passed"] is True, metrics
    assert metrics["overfit_final_loss"] < metrics["overfit_loss"] == 0.05
    assert metrics["epochs"] < 100  # it stopped at the first epoch below the threshold
    assert json.loads((out / "metrics.json").read_text())["overfit_passed"] is True
    saved = OmegaConf.load(out / "config.yaml")  # what ran: no dropout, no shuffling
    assert (saved.model.dropout, saved.data.shuffle_buffer) == (0.0, 1)
    said = [r.getMessage() for r in caplog.records if r.name == "kexp"]
    assert any(m.startswith("debug=overfit: training loss") and "fit together" in m
               for m in said), said


def test_a_failed_overfit_says_so():
    trainer = OmegaConf.create({"overfit_loss": 0.05})
    verdict = debug.overfit_verdict({"loss": [2.0, 1.5]}, trainer)
    assert verdict == {"overfit_passed": False, "overfit_loss": 0.05, "overfit_final_loss": 1.5}
    assert debug.overfit_verdict({"loss": [0.1]}, OmegaConf.create({"overfit_loss": None})) == {}


def test_overfit_adds_no_key_a_model_does_not_have():
    cfg = compose_train(["debug=overfit", "model=resnet20", "data=cifar10"])
    assert cfg.model.l2 > 0 and "recurrent_dropout" not in cfg.model
    debug.for_overfitting(cfg)
    assert "recurrent_dropout" not in cfg.model and cfg.model.l2 == 0.0
    assert (cfg.data.augment.crop_padding, cfg.data.augment.horizontal_flip) == (0, False)


def test_profile_writes_a_trace_in_the_run_dir(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="kexp"):
        _, out = _train(tmp_path, ["debug=profile", "trainer.profile_steps=[2,4]",
                                   "data.subset=320", "callbacks=none"])
    assert list((out / "profile").glob("plugins/profile/*/*.xplane.pb")), \
        sorted(p.relative_to(out) for p in out.rglob("*"))
    said = [r.getMessage() for r in caplog.records if r.name == "kexp"]
    assert any(m.startswith("debug=profile: trace of steps 2-4") and
               f"tensorboard --logdir {out / 'profile'}" in m for m in said), said


class _Tracker:
    def __init__(self) -> None:
        self.logged: list[tuple[Path, str | None]] = []

    def log_artifact(self, path: Path, folder: str | None = None) -> None:
        self.logged.append((path, folder))


def test_the_profiler_covers_whole_calls_and_logs_the_trace(tmp_path):
    """Four steps a call, steps 3-6: the trace runs from the call of steps 1-4 to the end of
    the call of 5-8, then stops; the tracker gets its files under profile/."""
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile(optimizer="sgd", loss="mse", steps_per_execution=4)
    x = np.zeros((48, 3), "float32")
    data = tf.data.Dataset.from_tensor_slices((x, x[:, :1])).batch(4)  # 12 steps: 3 calls
    tracker = _Tracker()
    profiler = debug.StepProfiler(3, 6, tmp_path / "profile", tracker)
    model.fit(data, epochs=1, verbose=0, shuffle=False, callbacks=[profiler])
    assert profiler.finished and not profiler.active and profiler.done == 12
    assert [folder.split("/")[:3] for _, folder in tracker.logged] == \
        [["profile", "plugins", "profile"]]
    assert tracker.logged[0][0].name.endswith(".xplane.pb")


def test_limit_is_a_few_batches_and_epochs_and_prints_the_config_tree(tmp_path):
    done = run_kexp(["debug=limit", "logger=none", "trainer.verbose=2"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0] == "config", lines[:5]  # the tree comes first, before TensorFlow loads
    assert "├── trainer" in lines and "│   ├── epochs: 3" in lines, lines
    epochs = [line for line in lines if line.startswith("3/3 - ")]  # 192 examples, 64 a batch
    assert len(epochs) == 3, done.stdout[-3000:]
    (run,) = (tmp_path / "logs" / "runs").iterdir()
    assert len((run / "history.csv").read_text().splitlines()) == 1 + 3


def test_the_tree_follows_trainer_verbose(capsys):
    assert not show_config(compose_train(["trainer.verbose=0"]))
    assert capsys.readouterr().out == ""
    assert show_config(compose_train(["trainer.verbose=1", "+tags.team=vision"]))
    lines = capsys.readouterr().out.splitlines()
    assert lines[:5] == ["config", "├── run_name: null", "├── tags", "│   └── team: vision",
                         "├── kexp"], lines  # a group is a branch, a key `key: value`
    assert "│   ├── hidden_units: [256, 128]" in lines, lines


def test_cfg_job_is_still_plain_yaml():
    cfg = cfg_job_without_tensorflow("kexp", ["debug=overfit", "trainer.verbose=1"])
    assert isinstance(cfg, DictConfig) and cfg.trainer.overfit_loss == 0.05
    assert cfg.callbacks.early_stopping.enabled is False
