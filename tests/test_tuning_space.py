"""Search spaces: parsing, keras-tuner declarations, overrides, and keys checked before a trial."""

from __future__ import annotations

import keras_tuner as kt
import pytest

from kexp.cli import group_options, groups
from kexp.errors import KexpError
from kexp.tuning import space
from tests.conftest import compose_train


def test_the_default_space_covers_lr_dropout_l1_l2_and_the_optimizer():
    cfg = compose_train()
    from hydra import compose, initialize_config_module

    with initialize_config_module("kexp.conf", version_base="1.3"):
        tune_cfg = compose("tune")
    params = {p.key: p for p in space.parse(tune_cfg.search.space)}
    assert set(params) == {"optimizer.lr", "model.dropout", "model.l1", "model.l2", "optimizer"}
    assert params["optimizer.lr"].sampling == "log"
    assert params["optimizer"].values == ("adam", "sgd", "rmsprop")
    assert tune_cfg.model == cfg.model  # a search starts from the training defaults


def test_declared_parameters_follow_their_distribution():
    params = space.parse({"optimizer.lr": {"type": "float", "min": 1e-4, "max": 1e-1,
                                           "sampling": "log"},
                          "model.depth": {"type": "choice", "values": [11, 13]},
                          "trainer.batch_size": {"type": "int", "min": 16, "max": 64, "step": 16},
                          "model.batch_norm": {"type": "bool"}})
    hp = kt.HyperParameters()
    for p in params:
        p.declare(hp)
    lr = hp._hps["optimizer.lr"][0]
    assert (lr.min_value, lr.max_value, lr.sampling) == (1e-4, 1e-1, "log")
    assert hp._hps["model.depth"][0].values == [11, 13]
    assert hp._hps["trainer.batch_size"][0].step == 16
    assert isinstance(hp._hps["model.batch_norm"][0], kt.engine.hyperparameters.Boolean)


def test_values_become_the_overrides_a_user_would_type():
    values = {"optimizer.lr": 0.01, "optimizer": "sgd", "model.batch_norm": True,
              "model.hidden_units": [64, 32], "tuner/epochs": 3}
    assert space.overrides(values) == ["optimizer=sgd", "optimizer.lr=0.01",
                                       "model.batch_norm=true", "model.hidden_units=[64,32]"]
    cfg = compose_train(space.overrides(values))
    assert cfg.optimizer.name == "sgd" and cfg.optimizer.momentum == 0.9  # sgd.yaml swapped in
    assert cfg.optimizer.lr == 0.01


def test_group_choices_are_logged_under_the_groups_name():
    """The composed config has optimizer.name but not the choice `optimizer=sgd` itself."""
    values = {"optimizer.lr": 0.01, "optimizer": "sgd", "model.batch_norm": True,
              "tuner/epochs": 3}
    assert space.group_choices(values, groups()) == {"optimizer": "sgd"}


@pytest.mark.parametrize(("spec", "words"), [
    ({"optimizer.lr": {"type": "real", "min": 0, "max": 1}}, ["search.space.optimizer.lr",
                                                              "float, int, choice, bool"]),
    ({"optimizer.lr": {"type": "float", "min": 1, "max": 0.1}}, ["min < max"]),
    ({"optimizer.lr": {"type": "float", "min": 0, "max": 1, "sampling": "log"}}, ["min > 0"]),
    ({"model.depth": {"type": "choice"}}, ["values"]),
    ({"model.depth": {"type": "choice", "values": [1], "min": 0}}, ["'min'", "values"]),
    ({}, ["search.space", "at least one"]),
])
def test_bad_specs_are_one_line(spec, words):
    with pytest.raises(KexpError) as err:
        space.parse(spec)
    assert len(str(err.value).splitlines()) == 1
    for word in words:
        assert word in str(err.value)


@pytest.mark.parametrize(("spec", "ok"), [
    ({"optimizer.lr": {"type": "float", "min": 1e-3, "max": 1e-1}}, True),
    ({"optimizer": {"type": "choice", "values": ["adam", "sgd"]},
      "optimizer.momentum": {"type": "float", "min": 0.5, "max": 0.99}}, True),  # sgd's key
    ({"optimizer.lrr": {"type": "float", "min": 1e-3, "max": 1e-1}}, False),
    ({"optimizer": {"type": "choice", "values": ["adam", "adamm"]}}, False),
])
def test_keys_must_exist_in_the_training_config(spec, ok):
    params = space.parse(spec)
    check = lambda: space.check_keys(params, compose_train, groups(), group_options)  # noqa: E731
    if ok:
        check()
    else:
        with pytest.raises(KexpError, match=r"search\.space\.optimizer"):
            check()


def test_tune_help_and_cfg_job_stay_free_of_tensorflow():
    import subprocess
    import sys

    from tests.conftest import ROOT, cfg_job_without_tensorflow

    out = subprocess.run([sys.executable, "-m", "kexp.tune", "--help"], capture_output=True,
                         text=True, timeout=60, cwd=ROOT).stdout
    assert "tuner: bayesian, grid, hyperband, random" in out
    assert "search: default, gan, lm, lr, lr_dropout_l2_optimizer, optimizer" in out
    printed = cfg_job_without_tensorflow("kexp.tune", ["tuner=hyperband"])
    assert printed.tuner.max_epochs == 27
