"""ResNet builder: reference parameter counts, layouts, knobs and clear errors."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from kexp.models import build, load_model
from kexp.models.resnet import LAYOUTS
from kexp.training.precision import precision_policy
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


@pytest.mark.parametrize(("name", "exact", "paper"), [
    ("resnet20", 269_722, 0.27e6), ("resnet56", 853_018, 0.85e6),
])
def test_cifar_resnets_have_the_papers_parameter_counts(name, exact, paper):
    # He et al. 2016, Table 6 (option A shortcuts): 0.27 M and 0.85 M with 10 classes
    params = trainable_params(build(model_cfg(name), (32, 32, 3), 10))
    assert params == exact
    assert abs(params / paper - 1) < 0.02


def test_option_a_shortcuts_are_parameter_free_and_option_b_adds_two_projections():
    a = build(model_cfg("resnet20", shortcut="zero_pad"), (32, 32, 3), 10)
    b = build(model_cfg("resnet20", shortcut="projection"), (32, 32, 3), 10)
    # 1x1 convs 16->32 and 32->64 plus their BN scale and offset
    assert trainable_params(b) - trainable_params(a) == 16 * 32 + 32 * 64 + 2 * (32 + 64)
    assert not any("shortcut_conv" in layer.name for layer in a.layers)


def test_resnet9_has_pages_parameter_count():
    model = build(model_cfg("resnet9"), (32, 32, 3), 10)
    assert trainable_params(model) == 6_573_130  # ~6.57 M
    assert model.get_layer("stage2_block0_add").output.shape[1:] == (4, 4, 512)
    assert isinstance(model.get_layer("pool"), keras.layers.GlobalMaxPooling2D)


def _without_conv_biases(reference: keras.Model) -> int:
    convs = layers_of(reference, keras.layers.Conv2D)
    biases = sum(int(np.prod(layer.bias.shape)) for layer in convs if layer.use_bias)
    return reference.count_params() - biases


def _kernel_shapes(model: keras.Model) -> list[tuple[int, ...]]:
    return sorted(tuple(layer.kernel.shape) for layer in layers_of(model, keras.layers.Conv2D))


@pytest.mark.parametrize(("name", "version", "reference"), [
    ("resnet50", "v1", "ResNet50"), ("resnet101", "v1", "ResNet101"),
    ("resnet50", "v2", "ResNet50V2"),
])
def test_imagenet_resnets_match_keras_applications(name, version, reference):
    # Keras' convs keep a bias in front of batch norm (which cancels it); ours have none, so
    # the counts differ by exactly those biases and every conv kernel is the same
    keras_model = getattr(keras.applications, reference)(weights=None)
    ours = build(model_cfg(name, block_version=version), (224, 224, 3), 1000)
    assert ours.count_params() == _without_conv_biases(keras_model)
    assert _kernel_shapes(ours) == _kernel_shapes(keras_model)
    assert len(layers_of(ours, keras.layers.BatchNormalization)) == \
        len(layers_of(keras_model, keras.layers.BatchNormalization))
    if name == "resnet50" and version == "v1":
        assert keras_model.count_params() - ours.count_params() == 26_560  # the conv biases


def test_depth_counts_the_weight_layers():
    # paper convention: convs on the main path + the classifier; projection shortcuts excluded
    # (101 and 152 only differ from 50 in blocks per stage, which LAYOUTS spells out)
    assert LAYOUTS[101].blocks == (3, 4, 23, 3) and LAYOUTS[152].blocks == (3, 8, 36, 3)
    for depth in (9, 20, 32, 18, 34, 50):
        model = build(model_cfg("resnet", depth=depth, width=0.0625), (32, 32, 3), 10)
        convs = [c for c in layers_of(model, keras.layers.Conv2D) if "shortcut" not in c.name]
        assert len(convs) + 1 == depth, depth


@pytest.mark.parametrize(("name", "overrides", "shape"), [
    ("resnet20", {}, (28, 28, 1)), ("resnet20", {}, (32, 32, 3)),
    ("resnet20", {"block_version": "v2", "attention": "cbam"}, (8, 8, 1)),
    ("resnet9", {}, (28, 28, 1)), ("resnet9", {"block_version": "v2"}, (32, 32, 3)),
    ("resnet18", {}, (28, 28, 1)), ("resnet50", {"block_version": "v2"}, (32, 32, 3)),
])
def test_class_probabilities_for_mnist_and_cifar_sizes(name, overrides, shape):
    model = build(model_cfg(name, width=0.0625, **overrides), shape, 7)
    assert_random_images_give_class_probabilities(model, shape, 7)


def test_imagenet_depths_pad_small_images_cifar_depths_do_not():
    imagenet = build(model_cfg("resnet18", width=0.0625), (28, 28, 1), 10)
    cifar = build(model_cfg("resnet20", width=0.0625), (28, 28, 1), 10)
    assert_only_imagenet_depths_pad(imagenet, "stage3_block1_add", cifar, "stage2_block2_add")


@pytest.mark.parametrize(("name", "blocks"), [("resnet20", 9), ("resnet9", 2), ("resnet18", 8)])
def test_se_attention_gates_every_residual_branch(name, blocks):
    plain = build(model_cfg(name, width=0.125), (32, 32, 3), 10)
    se = build(model_cfg(name, width=0.125, attention="se"), (32, 32, 3), 10)
    assert sum(layer.name.endswith("_se_squeeze") for layer in se.layers) == blocks
    assert sum(isinstance(layer, keras.layers.Add) for layer in se.layers) == blocks
    assert se.count_params() > plain.count_params()
    # the gate scales the branch, and the scaled branch is what the addition receives
    scaled_branch = se.get_layer("stage0_block0_se_scale").output
    assert any(t is scaled_branch for t in se.get_layer("stage0_block0_add").input)


def _block_layer_types(model: keras.Model, prefix: str) -> list[str]:
    return [type(layer).__name__ for layer in model.layers
            if layer.name.startswith(prefix) and "shortcut" not in layer.name]


def test_v2_puts_batch_norm_and_activation_before_each_conv():
    v1 = build(model_cfg("resnet20", width=0.125), (32, 32, 3), 10)
    v2 = build(model_cfg("resnet20", width=0.125, block_version="v2"), (32, 32, 3), 10)
    assert _block_layer_types(v1, "stage1_block1_") == [
        "Conv2D", "BatchNormalization", "Activation", "Conv2D", "BatchNormalization", "Add",
        "Activation"]
    assert _block_layer_types(v2, "stage1_block1_") == [
        "BatchNormalization", "Activation", "Conv2D", "BatchNormalization", "Activation",
        "Conv2D", "Add"]
    assert v2.name == "resnet20v2"
    assert v2.get_layer("post_bn") is not None  # one BN -> act after the last stage
    assert trainable_params(v2) == trainable_params(v1)  # same weights, another order


def test_l2_puts_one_penalty_on_every_kernel():
    # convs (projection shortcuts included), the SE blocks' dense layers and the classifier
    model = build(model_cfg("resnet18", width=0.125, l2=1e-4, attention="se"), (32, 32, 3), 10)
    kernels = layers_of(model, keras.layers.Conv2D) + layers_of(model, keras.layers.Dense)
    assert len(model.losses) == len(kernels) == 20 + 8 * 2 + 1  # 17 + 3 projection convs


def test_shared_knobs_reach_the_layers():
    model = build(model_cfg("resnet20", width=0.5, activation="swish", dropout=0.3,
                            batch_norm=False, kernel_initializer="glorot_uniform"),
                  (32, 32, 3), 10)
    convs = layers_of(model, keras.layers.Conv2D)
    assert convs[0].filters == 8 and convs[-1].filters == 32  # 16 and 64 at width 0.5
    # swish is silu: the stem + two per block; the softmax is the rest
    assert_shared_image_knobs(model, initializer=keras.initializers.GlorotUniform,
                              activation="silu", activations=1 + 9 * 2)
    assert [d.rate for d in layers_of(model, keras.layers.Dropout)] == [0.3]


def test_zero_pad_shortcut_saves_loads_and_runs_in_mixed_precision(tmp_path):
    with precision_policy("mixed_float16"):
        model = build(model_cfg("resnet20", width=0.125), (16, 16, 3), 5)
    assert model.output.dtype == "float32"
    model = build(model_cfg("resnet20", width=0.125), (16, 16, 3), 5)
    x = np.random.rand(3, 16, 16, 3).astype("float32")
    model.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(loaded(x, training=False), model(x, training=False), rtol=1e-5)


@pytest.mark.parametrize(("overrides", "shape", "words"), [
    ({"depth": 21}, (32, 32, 3), ["model.depth: 21", "20, 32, 44, 56, 110", "18, 34, 50"]),
    ({"block_version": "v3"}, (32, 32, 3), ["model.block_version", "v1, v2"]),
    ({"shortcut": "B"}, (32, 32, 3), ["model.shortcut", "zero_pad, projection"]),
    ({"attention": "eca"}, (32, 32, 3), ["model.attention", "se, cbam"]),
    ({}, (7, 7, 1), ["8x8", "(7, 7, 1)"]),
    *SHARED_IMAGE_ERRORS,
])
def test_bad_settings_are_one_line_naming_the_key(overrides, shape, words):
    with one_line_error(*words):
        build(model_cfg("resnet20", **overrides), shape, 10)
