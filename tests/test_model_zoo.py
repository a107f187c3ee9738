"""Every model preset builds for each data set it is meant for and takes a training step."""

from __future__ import annotations

import inspect
import subprocess
import sys

import keras
import numpy as np
import pytest

from kexp.errors import KexpError
from kexp.models import backbone_names, build, names, resolve_builder
from tests.test_models import model_cfg

# the presets the model-zoo issue promises, each a config option of its own
PROMISED = """mlp lenet cnn alexnet alexnet_cifar vgg11 vgg13 vgg16 vgg19 resnet9 resnet20 resnet56
resnet110 resnet18 resnet34 resnet50 resnet101 densenet_bc100 densenet121 mobilenet mobilenet_v2
rnn lstm gru bilstm transformer tcn vgg resnet densenet""".split()

# shape of one example and number of classes, as each data config produces them
# (the smallest images, which the deep layouts must pad, and 3-channel CIFAR with 100 classes;
# MNIST's 28x28x1 lies between them and each family's own test module builds it)
IMAGE_DATA = {"cifar100": ((32, 32, 3), 100), "digits": ((8, 8, 1), 10)}
TEXT_DATA = {"imdb_reviews": 2, "ag_news_subset": 4}
SEQUENCE_LENGTH, VOCAB = 24, 300


def is_text(name: str) -> bool:
    return "vocab_size" in inspect.signature(resolve_builder(model_cfg(name)._target_)).parameters


def reads_sentences(name: str) -> bool:
    return getattr(resolve_builder(model_cfg(name)._target_), "reads_sentences", False)


def tiny(name: str) -> dict:
    """The preset at a small width, so the deepest layouts still step in a second or two."""
    accepted = inspect.signature(resolve_builder(model_cfg(name)._target_)).parameters
    return {key: value for key, value in (("width", 0.125), ("alpha", 0.25)) if key in accepted}


def cases():
    for name in backbone_names():  # the generative presets: tests/test_gan.py
        if is_text(name):
            yield from (pytest.param(name, data, id=f"{name}-{data}") for data in TEXT_DATA)
        else:
            yield from (pytest.param(name, data, id=f"{name}-{data}") for data in IMAGE_DATA)


def test_every_promised_preset_is_a_config_option():
    assert sorted(set(PROMISED) - set(names())) == []


def test_help_lists_every_model():
    out = subprocess.run([sys.executable, "-m", "kexp", "--help"], capture_output=True,
                         text=True, timeout=60).stdout
    listed = next(line for line in out.splitlines() if line.startswith("model:"))
    assert {n.strip() for n in listed.split(":", 1)[1].split(",")} == set(names())


@pytest.mark.parametrize(("name", "data"), list(cases()))
def test_preset_takes_a_training_step(name, data):
    rng = np.random.default_rng(0)
    if data in TEXT_DATA:
        classes = TEXT_DATA[data]
        # documents of sentences for model=han (data.sentences): 3 of SEQUENCE_LENGTH / 3 ids
        shape = (3, SEQUENCE_LENGTH // 3) if reads_sentences(name) else (SEQUENCE_LENGTH,)
        x = rng.integers(2, VOCAB, size=(4, *shape)).astype("int32")
        x[..., -5:] = 0  # padded tail, as TextVectorization leaves short texts
        model = build(model_cfg(name, **tiny(name)), shape, classes, vocab_size=VOCAB)
    else:
        shape, classes = IMAGE_DATA[data]
        x = rng.random((4, *shape), dtype="float32")
        model = build(model_cfg(name, **tiny(name)), shape, classes)
    y = np.arange(4) % classes
    assert model.output_shape == (None, classes)
    # eagerly: tracing the train step of the deepest presets costs ~10 s each here; graph-mode
    # training of every family is covered by its own test module and the end-to-end runs
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="sparse_categorical_crossentropy",
                  run_eagerly=True)
    before = [w.numpy().copy() for w in model.trainable_weights]
    loss = model.train_on_batch(x, y)
    assert np.isfinite(loss)
    changed = sum(not np.array_equal(b, w.numpy()) for b, w in zip(before, model.trainable_weights,
                                                                    strict=True))
    assert changed > 0.5 * len(before)  # the step reached most of the network


def test_text_models_refuse_images_and_image_models_refuse_text():
    with pytest.raises(KexpError, match=r"model=lstm reads token sequences .*data=imdb_reviews"):
        build(model_cfg("lstm"), (28, 28, 1), 10)
    with pytest.raises(KexpError, match=r"model=resnet20 reads images .*model=lstm"):
        build(model_cfg("resnet20"), (SEQUENCE_LENGTH,), 2, vocab_size=VOCAB)
