"""What kexp refuses to do on a file's or a config's say-so: run code from a saved model, import
and call any `_target_`, or serve the tuner's oracle beyond this machine by default."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from kexp import models
from kexp.cli import group_options
from kexp.errors import KexpError
from kexp.tuning.distributed import environment
from tests.conftest import ROOT, compose_train, run_kexp


def _save_lambda_model(path: Path) -> Path:
    """A tiny digits-shaped classifier whose Lambda layer holds Python bytecode."""
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Lambda(lambda t: t * 2.0)(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))
    model.save(path)
    return path


def test_load_model_refuses_a_lambda_layer_unless_opted_in(tmp_path):
    saved = _save_lambda_model(tmp_path / "model.keras")
    with pytest.raises(KexpError) as refused:
        models.load_model(saved)
    message = str(refused.value)
    assert "\n" not in message
    for words in ("Lambda", "arbitrary code execution", "unsafe_load=true", "safe_mode=False"):
        assert words in message
    loaded = models.load_model(saved, safe_mode=False)
    x = np.ones((1, 8, 8, 1), dtype="float32")
    assert loaded.predict(x, verbose=0).shape == (1, 10)


def test_eval_refuses_a_run_whose_model_has_a_lambda_layer(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    OmegaConf.save(compose_train(["logger=none"]), run / "config.yaml")
    _save_lambda_model(run / "model.keras")
    done = run_kexp([f"run_dir={run}"], tmp_path, module="kexp.eval", timeout=120)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kexp: error:"), done.stderr
    assert "Lambda" in lines[0] and "unsafe_load=true" in lines[0]
    assert not (run / "eval_metrics.json").exists()


def test_a_target_outside_kexp_and_keras_is_refused_before_tensorflow(tmp_path):
    # main() exits through SystemExit; TensorFlow must not have been imported by then
    code = ("import sys; from kexp.__main__ import main\n"
            "sys.argv = ['kexp', 'model._target_=os.system', 'logger=none']\n"
            "try:\n    main()\nfinally:\n"
            "    assert 'tensorflow' not in sys.modules, 'TensorFlow was imported'\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        "kexp: error: model._target_: 'os.system' is not allowed; kexp only builds from kexp.* "
        "and keras.*; add its module to kexp.allow_targets=[...] to trust it")


def test_build_refuses_a_target_outside_the_allowlist_without_importing_it():
    lone = OmegaConf.create({"_target_": "kexp_safety_never_imported.build", "name": "x"})
    with pytest.raises(KexpError, match="is not allowed"):
        models.build(lone, (8, 8, 1), 10)
    assert "kexp_safety_never_imported" not in sys.modules
    # a run's config carries its allowlist to build(cfg.model, ...)
    cfg = compose_train(["model._target_=os.system"])
    with pytest.raises(KexpError, match="'os.system' is not allowed"):
        models.build(cfg.model, (8, 8, 1), 10)
    # an allowed module still has to hold the builder
    with pytest.raises(KexpError, match="cannot import 'os.nosuch'"):
        models.resolve_builder("os.nosuch", ["os"])


USER_BUILDER = '''
"""A user's own model family, outside kexp: it takes the mlp yaml's knobs."""
import keras


def tiny(input_shape, num_classes, hidden_units, activation, dropout, batch_norm, width, l1, l2,
         kernel_initializer):
    inputs = keras.Input(input_shape)
    x = keras.layers.Flatten()(inputs)
    for units in hidden_units:
        x = keras.layers.Dense(units, activation=activation)(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(x))
'''


def test_a_user_builder_runs_once_its_module_is_allowed(tmp_path):
    (tmp_path / "userzoo.py").write_text(textwrap.dedent(USER_BUILDER))
    env = {"PYTHONPATH": str(tmp_path)}
    args = ["model._target_=userzoo.tiny", "model.hidden_units=[8]", "trainer.epochs=1",
            "logger=none", "callbacks=none"]
    refused = run_kexp(args, tmp_path, env=env, timeout=60)
    assert refused.returncode == 2 and "'userzoo.tiny' is not allowed" in refused.stderr
    done = run_kexp([*args, "kexp.allow_targets=[userzoo]"], tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert "test_accuracy" in done.stdout + done.stderr


def test_the_tuner_oracle_listens_on_loopback_by_default():
    with initialize_config_module("kexp.conf", version_base="1.3"):
        for tuner in group_options("tuner"):
            cfg = compose("tune", overrides=[f"tuner={tuner}", "tuner.distributed.role=chief"])
            # keras-tuner's chief binds its gRPC server to KERASTUNER_ORACLE_IP
            with environment(cfg.tuner.distributed):
                assert os.environ["KERASTUNER_ORACLE_IP"] == "127.0.0.1", tuner


def test_make_ui_serves_mlflow_on_loopback():
    recipe = re.search(r"^ui:.*\n((?:\t.*\n?)+)", (ROOT / "Makefile").read_text(), re.M)
    assert recipe is not None
    assert re.search(r"mlflow ui --host 127\.0\.0\.1\b", recipe.group(1))
