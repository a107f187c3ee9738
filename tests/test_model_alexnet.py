"""AlexNet: the torchvision parameter count, both layouts on small images, knobs, errors."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from kexp.errors import KexpError
from kexp.models import build
from tests.test_models import model_cfg

TINY = {"width": 0.0625, "dense_units": [32]}


def _convs(model):
    return [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]


def test_imagenet_layout_matches_torchvision_alexnet():
    # torchvision.models.alexnet(): 61,100,840 parameters with 1000 classes
    model = build(model_cfg("alexnet"), (224, 224, 3), 1000)
    assert model.count_params() == 61_100_840
    assert [(c.filters, c.kernel_size[0], c.strides[0]) for c in _convs(model)] == [
        (64, 11, 4), (192, 5, 1), (384, 3, 1), (256, 3, 1), (256, 3, 1)]
    assert model.get_layer("flatten").output.shape[-1] == 6 * 6 * 256
    assert [d.units for d in model.layers if isinstance(d, keras.layers.Dense)] == \
        [4096, 4096, 1000]
    assert [d.rate for d in model.layers if isinstance(d, keras.layers.Dropout)] == [0.5, 0.5]
    assert not any(isinstance(layer, keras.layers.Resizing) for layer in model.layers)


@pytest.mark.parametrize("shape", [(28, 28, 1), (32, 32, 3)])
@pytest.mark.parametrize("name", ["alexnet_cifar", "alexnet"])
def test_small_images_give_class_probabilities(name, shape):
    model = build(model_cfg(name, **TINY), shape, 10)
    probs = model(np.random.rand(2, *shape).astype("float32"), training=False)
    assert tuple(probs.shape) == (2, 10)
    np.testing.assert_allclose(np.sum(probs, axis=1), 1.0, rtol=1e-5)
    resized = [layer for layer in model.layers if isinstance(layer, keras.layers.Resizing)]
    if name == "alexnet":  # the 224-px layout resizes small images inside the model
        assert tuple(resized[0].output.shape[1:3]) == (224, 224)
        assert model.get_layer("flatten").output.shape[-1] == 6 * 6 * 16
    else:  # stride 1 and two "same" pools: 32 -> 8, 28 -> 7, no resizing
        assert not resized
        assert model.get_layer("flatten").output.shape[-1] == (shape[0] // 4) ** 2 * 16


def test_cifar_layout():
    model = build(model_cfg("alexnet_cifar"), (32, 32, 3), 10)
    convs = _convs(model)
    assert [(c.filters, c.kernel_size[0], c.strides[0]) for c in convs] == [
        (64, 5, 1), (192, 5, 1), (384, 3, 1), (256, 3, 1), (256, 3, 1)]
    assert sum(isinstance(layer, keras.layers.MaxPooling2D) for layer in model.layers) == 2
    assert [d.units for d in model.layers if isinstance(d, keras.layers.Dense)] == [512, 512, 10]
    # batch_norm: true in the preset: BN after every conv, which then has no bias
    assert sum(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers) == 5
    assert not any(c.use_bias for c in convs)


def test_knobs_reach_the_layers():
    base = build(model_cfg("alexnet_cifar", **TINY, l2=0.0), (32, 32, 3), 10)
    model = build(model_cfg("alexnet_cifar", width=0.125, dense_units=[32, 16], l2=1e-3,
                            activation="gelu", dropout=0.25), (32, 32, 3), 10)
    assert [c.filters for c in _convs(model)] == [8, 24, 48, 32, 32]
    assert model.count_params() > base.count_params()
    assert len(base.losses) == 0
    assert len(model.losses) == 5 + 3  # one L2 penalty per conv and dense kernel
    assert model.get_layer("conv3_act").activation.__name__ == "gelu"
    assert [d.rate for d in model.layers if isinstance(d, keras.layers.Dropout)] == [0.25, 0.25]


@pytest.mark.parametrize(("name", "overrides", "shape", "words"), [
    ("alexnet", {"variant": "tiny"}, (32, 32, 3), ["model.variant", "'tiny'", "imagenet, cifar"]),
    ("alexnet", {"resize_to": 0}, (32, 32, 3), ["63x63", "(32, 32, 3)", "alexnet_cifar"]),
    ("alexnet", {"resize_to": -1}, (32, 32, 3), ["model.resize_to", "-1"]),
    ("alexnet_cifar", {"activation": "relu7"}, (32, 32, 3), ["model.activation", "relu7"]),
    ("alexnet_cifar", {}, (100,), ["images", "(100,)"]),
])
def test_bad_settings_are_named(name, overrides, shape, words):
    with pytest.raises(KexpError) as err:
        build(model_cfg(name, **overrides), shape, 10)
    assert "\n" not in str(err.value)
    for word in words:
        assert word in str(err.value)
