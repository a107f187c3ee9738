"""Model builders: shapes, reference parameter counts, knobs, and clear errors."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from omegaconf import OmegaConf

from kexp.errors import KexpError
from kexp.models import build
from kexp.training.precision import precision_policy
from tests.conftest import compose_train


def model_cfg(name: str, **overrides):
    """conf/model/<name>.yaml as Hydra composes it (presets inherit from their family yaml)."""
    cfg = compose_train([f"model={name}"]).model
    OmegaConf.set_struct(cfg, False)  # tests may add keys a builder does not know
    return OmegaConf.merge(cfg, overrides)


@pytest.mark.parametrize(("name", "shape"), [
    ("mlp", (8, 8, 1)), ("cnn", (28, 28, 1)), ("cnn", (8, 8, 1)), ("vgg", (32, 32, 3)),
    ("vgg", (28, 28, 1)),
])
def test_builders_give_class_probabilities(name, shape):
    overrides = {"width": 0.125} if name == "vgg" else {}
    model = build(model_cfg(name, **overrides), shape, 7)
    probs = model(np.random.rand(2, *shape).astype("float32"), training=False)
    assert tuple(probs.shape) == (2, 7)
    np.testing.assert_allclose(np.sum(probs, axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize(("depth", "reference"), [(16, "VGG16"), (19, "VGG19")])
def test_vgg_matches_keras_applications_parameter_count(depth, reference):
    # Keras' own VGG conv base (no top) + our 512 -> 10 classifier
    base = getattr(keras.applications, reference)(include_top=False, weights=None,
                                                  input_shape=(32, 32, 3))
    ours = build(model_cfg("vgg", depth=depth, batch_norm=False, dense_units=[]), (32, 32, 3), 10)
    assert ours.count_params() == base.count_params() + 512 * 10 + 10


def test_vgg_imagenet_head_is_the_original_vgg16():
    reference = keras.applications.VGG16(weights=None)  # 224x224x3, 1000 classes, 4096-4096 head
    ours = build(model_cfg("vgg16", batch_norm=False, dense_units=[4096, 4096]), (224, 224, 3),
                 1000)
    assert ours.count_params() == reference.count_params() == 138_357_544


def test_lenet_valid_is_the_1998_layout():
    model = build(model_cfg("lenet", padding="valid"), (32, 32, 1), 10)
    assert model.count_params() == 61_706
    pools = [layer for layer in model.layers if isinstance(layer, keras.layers.AveragePooling2D)]
    assert len(pools) == 2


@pytest.mark.parametrize("name", ["mlp", "cnn", "vgg11"])
def test_width_scales_the_model(name):
    shape = (32, 32, 3)
    small = build(model_cfg(name, width=0.25), shape, 10).count_params()
    large = build(model_cfg(name, width=0.5), shape, 10).count_params()
    assert small < large


@pytest.mark.parametrize(("kind", "marker"),
                         [("se", "_se_squeeze"), ("cbam", "_cbam_spatial_gate")])
def test_cnn_attention_adds_one_block_per_stage(kind, marker):
    model = build(model_cfg("cnn", attention=kind), (28, 28, 1), 10)
    assert sum(layer.name.endswith(marker) for layer in model.layers) == 2
    plain = build(model_cfg("cnn"), (28, 28, 1), 10)
    assert model.count_params() > plain.count_params()


def test_vgg_depth_counts_conv_layers():
    for depth, convs in {11: 8, 13: 10, 16: 13, 19: 16}.items():
        model = build(model_cfg("vgg", depth=depth, width=0.0625), (32, 32, 3), 10)
        assert sum(isinstance(layer, keras.layers.Conv2D) for layer in model.layers) == convs


def test_knobs_reach_the_layers():
    model = build(model_cfg("mlp", hidden_units=[32, 16], activation="gelu", dropout=0.25,
                            batch_norm=True, l2=1e-3, kernel_initializer="he_normal"),
                  (8, 8, 1), 10)
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert [d.units for d in dense] == [32, 16, 10]
    assert all(d.kernel_regularizer is not None for d in dense)
    assert any(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers)
    assert [layer.rate for layer in model.layers if isinstance(layer, keras.layers.Dropout)] == \
        [0.25, 0.25]
    assert len(model.losses) == 3  # one L2 penalty per kernel


def test_mixed_precision_keeps_a_float32_output():
    with precision_policy("mixed_float16"):
        model = build(model_cfg("cnn"), (28, 28, 1), 10)
    assert model.layers[1].compute_dtype == "float16"
    assert model.output.dtype == "float32"
    assert keras.config.dtype_policy().name == "float32"  # restored afterwards


@pytest.mark.parametrize(("name", "overrides", "shape", "words"), [
    ("vgg", {"depth": 12}, (32, 32, 3), ["model.depth", "11, 13, 16, 19"]),
    ("cnn", {"filters": [8, 8, 8, 8]}, (8, 8, 1), ["16x16", "(8, 8, 1)"]),
    ("lenet", {"padding": "valid"}, (8, 8, 1), ["16x16", "model.filters"]),
    ("cnn", {"attention": "sae"}, (8, 8, 1), ["model.attention", "se, cbam"]),
    ("cnn", {"pooling": "min"}, (8, 8, 1), ["model.pooling", "max or avg"]),
    ("mlp", {"kernel_initializer": "he"}, (4,), ["model.kernel_initializer", "he_normal"]),
    ("cnn", {}, (100,), ["images"]),
    ("mlp", {"activation": "relu6x"}, (4,), ["model.activation", "relu6x"]),
    ("mlp", {"units": 3}, (4,), ["model.units", "hidden_units"]),
])
def test_bad_model_settings_are_named(name, overrides, shape, words):
    with pytest.raises(KexpError) as err:
        build(model_cfg(name, **overrides), shape, 10)
    for word in words:
        assert word in str(err.value)
