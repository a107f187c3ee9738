"""DenseNet builder: reference parameter counts, layouts, knobs and clear errors."""

from __future__ import annotations

import keras
import pytest

from kexp.models import build
from tests.model_checks import (
    SHARED_IMAGE_ERRORS,
    assert_only_imagenet_depths_pad,
    assert_random_images_give_class_probabilities,
    assert_shared_image_knobs,
    layers_of,
    one_line_error,
    trainable_params,
)
from tests.test_models import model_cfg


def convs_of(model: keras.Model) -> list[keras.layers.Conv2D]:
    return layers_of(model, keras.layers.Conv2D)


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
    assert_random_images_give_class_probabilities(model, shape, 7)


def test_imagenet_depths_pad_small_images_cifar_depths_do_not():
    imagenet = build(model_cfg("densenet121", width=0.125), (28, 28, 1), 10)
    cifar = build(model_cfg("densenet", depth=40, width=0.25), (28, 28, 1), 10)
    assert_only_imagenet_depths_pad(imagenet, "post_act", cifar, "post_act")


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
    dense = layers_of(model, keras.layers.Dense)
    assert len(model.losses) == len(convs_of(model)) + len(dense) == 40  # one L2 per kernel
    # two per dense layer, transitions, the end
    assert_shared_image_knobs(model, initializer=keras.initializers.HeUniform,
                              activation="elu", activations=2 * 18 + 2 + 1)


@pytest.mark.parametrize(("overrides", "shape", "words"), [
    ({"depth": 99}, (32, 32, 3), ["model.depth: 99", "121, 169, 201, 264", "6n+4"]),
    ({"depth": 4}, (32, 32, 3), ["model.depth: 4"]),
    ({"compression": 1.5}, (32, 32, 3), ["model.compression", "(0, 1]"]),
    ({"growth_rate": 0}, (32, 32, 3), ["model.growth_rate", "positive"]),
    ({}, (3, 3, 1), ["4x4", "(3, 3, 1)"]),
    *SHARED_IMAGE_ERRORS,
])
def test_bad_settings_are_one_line_naming_the_key(overrides, shape, words):
    with one_line_error(*words):
        build(model_cfg("densenet", **overrides), shape, 10)
