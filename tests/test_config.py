"""Every config group option composes, and the CLI stays fast and TensorFlow-free."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from kexp.cli import config_dir, group_options, groups
from tests.conftest import ROOT, cfg_job_without_tensorflow, compose_train

GROUP_OPTIONS = [(g, o) for g in groups() for o in group_options(g)]
TUNE_ONLY = ("tuner", "search")  # groups of tune.yaml, the search config


def test_conf_is_the_packaged_config_dir():
    assert config_dir().resolve() == (ROOT / "conf").resolve()
    assert {"model", "data", "optimizer", "schedule", "trainer", "callbacks", "logger",
            "strategy", "experiment", "debug", "paths"} <= set(groups())


@pytest.mark.parametrize(("group", "option"), GROUP_OPTIONS,
                         ids=[f"{g}={o}" for g, o in GROUP_OPTIONS])
def test_every_group_option_composes(group, option):
    if group in TUNE_ONLY:
        with initialize_config_module("kexp.conf", version_base="1.3"):
            cfg = compose("tune", overrides=[f"{group}={option}"])
        assert cfg[group]  # and the training groups below are all there too
    else:
        cfg = compose_train([f"{group}={option}"])
    for key in ("model", "data", "optimizer", "schedule", "trainer", "callbacks", "logger",
                "strategy", "paths"):
        assert key in cfg, f"{group}={option} lost the {key} group"
    if group in ("model", "data", "optimizer", "schedule", "strategy"):
        # the yaml picked is the one composed (presets name themselves)
        own = OmegaConf.load(ROOT / "conf" / group / f"{option}.yaml")
        for key in own:
            if key == "defaults":  # a preset inheriting its family's yaml
                continue
            if not OmegaConf.is_interpolation(own, key) and not OmegaConf.is_missing(own, key):
                assert cfg[group][key] == own[key], f"{group}.{key}"


def test_models_name_an_importable_builder():
    from kexp.models import resolve_builder

    for option in group_options("model"):
        cfg = compose_train([f"model={option}"])
        assert callable(resolve_builder(cfg.model._target_))


def test_experiment_presets_set_several_groups():
    cfg = compose_train(["experiment=cifar10_vgg"])
    assert (cfg.model.name, cfg.data.name, cfg.optimizer.name, cfg.schedule.name) == \
        ("vgg", "cifar10", "sgd", "cosine")
    assert cfg.optimizer.lr == 0.05 and cfg.data.augment.horizontal_flip is True
    # a command-line override still wins over the preset
    assert compose_train(["experiment=cifar10_vgg", "trainer.epochs=3"]).trainer.epochs == 3


def test_debug_fast_is_a_small_short_run():
    cfg = compose_train(["debug=fast", "data=cifar10"])
    assert cfg.trainer.epochs == 1 and cfg.data.subset == 256


def test_defaults_are_the_quick_start():
    cfg = compose_train()
    assert (cfg.model.name, cfg.data.name, cfg.logger.backend, cfg.strategy.name) == \
        ("mlp", "digits", "mlflow", "auto")
    assert cfg.logger.experiment == "kexp"


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kexp", *args], capture_output=True,
                          text=True, timeout=60, cwd=ROOT)


def test_help_lists_every_group_and_option():
    out = _cli("--help").stdout
    for group in groups():
        line = next(line for line in out.splitlines() if line.startswith(f"{group}:"))
        assert line.split(":", 1)[1].replace(" ", "").split(",") == group_options(group)


def test_cfg_job_prints_the_config_without_importing_tensorflow():
    printed = cfg_job_without_tensorflow("kexp", ["model=vgg", "model.depth=16"])
    assert printed.model.name == "vgg" and printed.model.depth == 16


def test_config_dir_adds_the_users_own_options_beside_kexps(tmp_path):
    (tmp_path / "search").mkdir()
    (tmp_path / "search" / "mine.yaml").write_text(
        "space:\n  optimizer.lr: {type: float, min: 1.0e-4, max: 1.0e-1, sampling: log}\n")
    printed = cfg_job_without_tensorflow(
        "kexp.tune", ["--config-dir", str(tmp_path), "search=mine", "model=cnn"])
    assert list(printed.search.space) == ["optimizer.lr"] and printed.model.name == "cnn"
