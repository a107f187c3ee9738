"""DenseNet builder: reference parameter counts, layouts, knobs and clear errors."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from kexp.errors import KexpError
from kexp.models import build
from tests.test_models import model_cfg


def trainable_params(model: keras.Model) -> int:
    """Parameters the optimizer trains: what papers count (no BN moving statistics)."""
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def convs_of(model: keras.Model) -> list[keras.layers.Conv2D]:
    return [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]


def test_densenet_bc100_has_the_papers_parameter_count():
    # Huang et al. 2017, Table 2: DenseNet-BC (L=100, k=12) has 0.8 M parameters
    model = build(model_cfg("densenet_bc100"), (32, 32, 3), 10)
    assert trainable_params(model) == 769_162
    assert abs(trainable_params(model) / 0.8e6 - 1) < 0.05
    # three blocks of 16 layers; transitions halve the channels: 24 + 16*12 = 216 -> 108 ...
    assert model.get_layer("transition0_conv").filters == 108
    assert model.get_layer("transition1_conv").filters == (108 + 16 * 12) // 2
    assert model.get_layer("post_act").output.shape[1:] == (8, 8, 150 + 16 * 12)


def test_densenet121_matches_keras_applications():
    reference = keras.applications.DenseNet121(weights=None)
    ours = build(model_cfg("densenet121"), (224, 224, 3), 1000)
    assert ours.count_params() == reference.count_params() == 8_062_504
    assert sorted(tuple(c.kernel.shape) for c in convs_of(ours)) == \
        sorted(tuple(c.kernel.shape) for c in convs_of(reference))


@pytest.mark.parametrize(("depth", "growth_rate"), [(40, 12), (100, 12), (121, 32)])
def test_depth_counts_the_weight_layers(depth, growth_rate):
    # stem + 2 convs per dense layer + transitions + the classifier
    model = build(model_cfg("densenet", depth=depth, growth_rate=growth_rate, width=0.125),
                  (32, 32, 3), 10)
    assert len(convs_of(model)) + 1 == depth


@pytest.mark.parametrize(("name", "shape"), [
    ("densenet", (28, 28, 1)), ("densenet", (32, 32, 3)), ("densenet", (8, 8, 1)),
    ("densenet121", (28, 28, 1)), ("densenet121", (32, 32, 3)),
])
def test_class_probabilities_for_mnist_and_cifar_sizes(name, shape):
    overrides = {"depth": 40} if name == "densenet" else {}
    model = build(model_cfg(name, width=0.125, **overrides), shape, 7)
    probs = model(np.random.rand(2, *shape).astype("float32"), training=False)
    assert tuple(probs.shape) == (2, 7)
    np.testing.assert_allclose(np.sum(probs, axis=1), 1.0, rtol=1e-5)


def test_imagenet_depths_pad_small_images_cifar_depths_do_not():
    imagenet = build(model_cfg("densenet121", width=0.125), (28, 28, 1), 10)
    assert imagenet.get_layer("pad_to_fit").output.shape[1:3] == (32, 32)
    assert imagenet.get_layer("post_act").output.shape[1:3] == (1, 1)  # 32x down
    cifar = build(model_cfg("densenet", depth=40, width=0.25), (28, 28, 1), 10)
    assert not any(layer.name == "pad_to_fit" for layer in cifar.layers)
    assert cifar.get_layer("post_act").output.shape[1:3] == (7, 7)


def test_width_scales_the_growth_rate_and_compression_the_transitions():
    model = build(model_cfg("densenet", depth=40, growth_rate=12, width=0.5, compression=1.0),
                  (32, 32, 3), 10)
    # k = 6: the stem has 2k, a dense layer a 4k bottleneck and k new maps
    assert model.get_layer("stem_conv").filters == 12
    assert model.get_layer("block0_layer0_conv1").filters == 24
    assert model.get_layer("block0_layer0_conv2").filters == 6
    assert model.get_layer("transition0_conv").filters == 12 + 6 * 6  # DenseNet-B keeps all


def test_dropout_follows_every_conv_but_the_stem():
    model = build(model_cfg("densenet", depth=40, width=0.25, dropout=0.2), (32, 32, 3), 10)
    rates = [layer.rate for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    assert rates == [0.2] * (len(convs_of(model)) - 1)
    assert not any(isinstance(layer, keras.layers.Dropout)
                   for layer in build(model_cfg("densenet", depth=40, width=0.25),
                                      (32, 32, 3), 10).layers)


def test_shared_knobs_reach_the_layers():
    model = build(model_cfg("densenet", depth=40, width=0.25, l2=1e-4, activation="elu",
                            batch_norm=False, kernel_initializer="he_uniform"),
                  (32, 32, 3), 10)
    convs = convs_of(model)
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert len(model.losses) == len(convs) + len(dense) == 40  # one L2 penalty per kernel
    assert all(c.use_bias for c in convs)  # no batch norm to cancel a bias
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers)
    assert all(isinstance(c.kernel_initializer, keras.initializers.HeUniform) for c in convs)
    acts = [layer.activation.__name__ for layer in model.layers
            if isinstance(layer, keras.layers.Activation)]
    assert acts.count("elu") == 2 * 18 + 2 + 1  # two per dense layer, transitions, the end


@pytest.mark.parametrize(("overrides", "shape", "words"), [
    ({"depth": 99}, (32, 32, 3), ["model.depth: 99", "121, 169, 201, 264", "6n+4"]),
    ({"depth": 4}, (32, 32, 3), ["model.depth: 4"]),
    ({"compression": 1.5}, (32, 32, 3), ["model.compression", "(0, 1]"]),
    ({"growth_rate": 0}, (32, 32, 3), ["model.growth_rate", "positive"]),
    ({"activation": "relu7"}, (32, 32, 3), ["model.activation", "relu7"]),
    ({}, (3, 3, 1), ["4x4", "(3, 3, 1)"]),
    ({}, (100,), ["images", "(100,)"]),
])
def test_bad_settings_are_one_line_naming_the_key(overrides, shape, words):
    with pytest.raises(KexpError) as err:
        build(model_cfg("densenet", **overrides), shape, 10)
    message = str(err.value)
    assert "\n" not in message
    for word in words:
        assert word in message
