"""Every option of the optimizer group, composed as a user's command composes it, builds the Keras
optimizer its yaml describes (the shared keys lr, weight_decay, clipnorm, clipvalue included),
and the newer ones train a small MLP on real digits."""

from __future__ import annotations

import math
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from kexp.errors import KexpError
from kexp.training.optimizers import build_optimizer
from tests.conftest import ROOT

CONF = ROOT / "conf"
OPTIONS = sorted(p.stem for p in (CONF / "optimizer").glob("*.yaml"))
SHARED = ("lr", "weight_decay", "clipnorm", "clipvalue")
TRAINED = ["adagrad", "adadelta", "nadam", "adamax", "lion"]
BATCH = 32


def compose_optimizer(*overrides: str) -> DictConfig:
    """The `optimizer` section of `python -m kexp <overrides>`."""
    with initialize_config_dir(config_dir=str(Path(CONF).absolute()), version_base="1.3"):
        return compose("train", overrides=list(overrides)).optimizer


def test_the_group_has_every_optimizer():
    assert set(OPTIONS) >= {"adam", "adamw", "rmsprop", "sgd", *TRAINED}


@pytest.mark.parametrize("name", OPTIONS)
def test_every_option_file_takes_the_shared_keys(name):
    text = (CONF / "optimizer" / f"{name}.yaml").read_text()
    assert text.startswith("# ") and not text.splitlines()[1].startswith("#"), \
        "a one-line comment on top says what the optimizer is"
    cfg = OmegaConf.create(text)
    assert cfg.name == name
    assert all(key in cfg for key in SHARED), [k for k in SHARED if k not in cfg]
    assert cfg.clipnorm is None and cfg.clipvalue is None  # no clipping unless asked for
    if name == "sgd":
        assert cfg.momentum == 0.9 and cfg.nesterov is True


@pytest.mark.parametrize("clip", [{"clipnorm": 1.5}, {"clipvalue": 0.25}],
                         ids=["clipnorm", "clipvalue"])
@pytest.mark.parametrize("name", OPTIONS)
def test_every_option_builds_with_the_configured_values(name, clip):
    overrides = [f"optimizer={name}", "optimizer.lr=0.05", "optimizer.weight_decay=0.01",
                 *(f"optimizer.{k}={v}" for k, v in clip.items())]
    cfg = compose_optimizer(*overrides)
    opt = build_optimizer(cfg, cfg.lr)
    assert type(opt).__name__.lower() == name
    config = opt.get_config()
    assert config["learning_rate"] == pytest.approx(0.05)
    assert config["weight_decay"] == pytest.approx(0.01)
    assert config["clipnorm"] == clip.get("clipnorm")
    assert config["clipvalue"] == clip.get("clipvalue")
    # and every key particular to this optimizer (beta_1, rho, momentum, ...) reached Keras
    for key, value in OmegaConf.to_container(cfg).items():
        if key not in ("name", *SHARED):
            assert config[key] == pytest.approx(value), key


def test_the_readme_style_command_composes_validates_and_builds():
    from kexp.cli import precheck

    args = ["optimizer=adagrad", "optimizer.lr=0.05"]
    precheck([*args, "--cfg", "job"], "train")  # exits with one line if the config is wrong
    for name in TRAINED:  # and each new option with the other clipping rule, as kexp checks it
        precheck([f"optimizer={name}", "optimizer.clipvalue=0.5", "--cfg", "job"], "train")
    cfg = compose_optimizer(*args)
    opt = build_optimizer(cfg, cfg.lr)
    assert isinstance(opt, keras.optimizers.Adagrad)
    assert float(opt.learning_rate) == pytest.approx(0.05)
    assert opt.get_config()["initial_accumulator_value"] == pytest.approx(0.1)


@pytest.mark.parametrize("settings, named", [
    ({"name": "sgd", "momentun": 0.9}, ["optimizer=sgd", "optimizer.momentun", "momentum"]),
    ({"name": "lion", "epsilon": 1e-8}, ["optimizer=lion", "optimizer.epsilon", "Lion"]),
    ({"name": "adamm"}, ["optimizer.name", "'adamm'", "adam"]),
    ({"name": "adam", "clipnorm": 1.0, "clipvalue": 0.5},
     ["optimizer.clipnorm", "optimizer.clipvalue"]),
    ({"name": "sgd", "momentum": 2.0}, ["optimizer=sgd", "optimizer.momentum=2.0"]),
    ({"name": "adam", "learning_rate": 0.1}, ["optimizer.learning_rate", "optimizer.lr"]),
])
def test_a_wrong_setting_is_one_line_naming_the_key(settings, named):
    with pytest.raises(KexpError) as caught:
        build_optimizer(OmegaConf.create({"lr": 0.01, **settings}), 0.01)
    message = str(caught.value)
    assert "\n" not in message
    assert all(word in message for word in named), message


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return (x / 16).astype("float32"), y.astype("int32")


@pytest.mark.parametrize("name", TRAINED)
def test_each_new_optimizer_trains_an_mlp_on_digits(name, digits):
    x, y = digits
    # the yaml's defaults, but Lion's lr 1e-4 (meant for long runs) moves a tiny MLP too little
    # in 8 epochs to tell learning from noise
    cfg = compose_optimizer(f"optimizer={name}", *(["optimizer.lr=1e-3"] if name == "lion" else []))
    keras.utils.set_random_seed(0)
    inputs = keras.Input((64,))
    hidden = keras.layers.Dense(64, activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(10)(hidden))
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    # one tf.function call an epoch: a second a test instead of four on 2 busy cores
    model.compile(optimizer=build_optimizer(cfg, cfg.lr), loss=loss,
                  steps_per_execution=math.ceil(len(x) / BATCH))
    before = float(loss(y, model(x)))
    # tf.data: Keras rebuilds a dataset from numpy arrays every epoch (much slower here)
    data = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=0).batch(BATCH).cache()
    history = model.fit(data, epochs=8, verbose=0, shuffle=False)
    after = float(loss(y, model(x)))  # the training loss of the final weights
    assert np.isfinite(history.history["loss"]).all()
    assert after < 0.5 * before, (name, before, after)
