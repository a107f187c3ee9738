"""MobileNet v1/v2: Keras reference parameter counts, small images, attention, knobs, errors."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from kexp.errors import KexpError
from kexp.models import build, load_model
from tests.test_models import model_cfg

PRESETS = {1: "mobilenet", 2: "mobilenet_v2"}
REFERENCES = {1: keras.applications.MobileNet, 2: keras.applications.MobileNetV2}


@pytest.mark.parametrize("alpha", [1.0, 0.35, 1.4])
@pytest.mark.parametrize("version", [1, 2])
def test_matches_keras_applications_parameter_count(version, alpha):
    # Keras' v1 top is a 1x1 conv with bias on the pooled 1x1x1024 map: the same
    # 1024 * 1000 + 1000 weights as our Dense, so the totals are equal with nothing to add.
    # 0.35 exercises v2's rounding to multiples of 8, 1.4 its widened last conv.
    ours = build(model_cfg(PRESETS[version], alpha=alpha), (224, 224, 3), 1000)
    reference = REFERENCES[version](weights=None, alpha=alpha)
    assert ours.count_params() == reference.count_params()
    assert ours.get_layer("avg_pool").input.shape[1:3] == (7, 7)


def test_alpha_scales_the_channels():
    full = build(model_cfg("mobilenet"), (32, 32, 3), 10)
    half = build(model_cfg("mobilenet", alpha=0.5), (32, 32, 3), 10)
    assert full.get_layer("conv_pw_13").filters == 1024
    assert half.get_layer("conv_pw_13").filters == 512
    # pointwise kernels dominate and shrink with alpha ** 2; the classifier only with alpha
    assert 0.25 < half.count_params() / full.count_params() < 0.35
    # width is kexp's shared multiplier: it multiplies alpha
    assert build(model_cfg("mobilenet", alpha=1.0, width=0.5), (32, 32, 3), 10).count_params() \
        == half.count_params()
    v2 = build(model_cfg("mobilenet_v2", alpha=0.5), (32, 32, 3), 10)
    assert v2.get_layer("block_16_project").filters == 160
    assert v2.get_layer("conv_last").filters == 1280  # kept at 1280 for alpha <= 1


@pytest.mark.parametrize("shape", [(28, 28, 1), (32, 32, 3)])
@pytest.mark.parametrize("version", [1, 2])
def test_small_images_give_class_probabilities(version, shape):
    model = build(model_cfg(PRESETS[version], alpha=0.25), shape, 10)
    probs = model(np.random.rand(2, *shape).astype("float32"), training=False)
    assert tuple(probs.shape) == (2, 10)
    np.testing.assert_allclose(np.sum(probs, axis=1), 1.0, rtol=1e-5)
    assert model.get_layer("avg_pool").input.shape[1:3] == (1, 1)  # five stride-2 stages


@pytest.mark.parametrize("version", [1, 2])
def test_first_stride_1_keeps_more_resolution(version):
    shape = (32, 32, 3)
    stem = build(model_cfg(PRESETS[version], alpha=0.25, first_stride=1), shape, 10)
    assert stem.get_layer("avg_pool").input.shape[1:3] == (2, 2)


def test_v1_blocks_are_depthwise_separable_with_relu6():
    model = build(model_cfg("mobilenet", alpha=0.25), (32, 32, 3), 10)
    depthwise = [la for la in model.layers if isinstance(la, keras.layers.DepthwiseConv2D)]
    pointwise = [la for la in model.layers if type(la) is keras.layers.Conv2D
                 and la.kernel_size == (1, 1)]
    assert len(depthwise) == len(pointwise) == 13
    assert [d.strides[0] for d in depthwise].count(2) == 4  # + the stem: 5 stride-2 stages
    relus = [la for la in model.layers if isinstance(la, keras.layers.ReLU)]
    assert len(relus) == 27 and all(float(r.max_value) == 6.0 for r in relus)
    assert not any("_se_" in la.name or "_cbam_" in la.name for la in model.layers)
    gelu = build(model_cfg("mobilenet", alpha=0.25, activation="gelu"), (32, 32, 3), 10)
    assert not any(isinstance(la, keras.layers.ReLU) for la in gelu.layers)


def test_v2_blocks_are_inverted_residuals_with_linear_bottlenecks():
    model = build(model_cfg("mobilenet_v2", alpha=0.35), (32, 32, 3), 10)
    depthwise = [la for la in model.layers if isinstance(la, keras.layers.DepthwiseConv2D)]
    assert len(depthwise) == 17
    assert sum(isinstance(la, keras.layers.Add) for la in model.layers) == 10
    expand = model.get_layer("block_5_expand")
    assert expand.filters == 6 * expand.input.shape[-1]
    # the projection's BN output feeds the residual add directly: no activation in between
    assert model.get_layer("block_5_add").input[1] is model.get_layer("block_5_project_bn").output


@pytest.mark.parametrize(("version", "kind", "blocks"), [(1, "se", 13), (2, "se", 17),
                                                    (1, "cbam", 13)])
def test_attention_goes_in_every_block(version, kind, blocks):
    model = build(model_cfg(PRESETS[version], alpha=0.25, attention=kind), (32, 32, 3), 10)
    if kind == "se":
        assert sum(la.name.endswith("_se_squeeze") for la in model.layers) == blocks
        assert sum("_se_" in la.name and isinstance(la, keras.layers.Dense)
                   for la in model.layers) == 2 * blocks
    else:
        assert sum(la.name.endswith("_cbam_spatial_gate") for la in model.layers) == blocks
        assert not any("_se_" in la.name for la in model.layers)


@pytest.mark.parametrize(("version", "kernels"), [(1, 1 + 13 + 13 + 1), (2, 1 + 16 + 17 + 17 + 2)])
def test_l2_penalises_every_kernel(version, kernels):
    # v1: stem, 13 depthwise, 13 pointwise, classifier
    # v2: stem, 16 expansions (block 0 has none), 17 depthwise, 17 projections, last conv,
    #     classifier
    model = build(model_cfg(PRESETS[version], alpha=0.25, l2=1e-4), (32, 32, 3), 10)
    assert len(model.losses) == kernels


def test_batch_norm_false_removes_it_and_gives_biases():
    model = build(model_cfg("mobilenet_v2", alpha=0.25, batch_norm=False, l2=0.0), (32, 32, 3),
                  10)
    assert not model.losses  # l2: 0.0 adds no penalty terms
    assert not any(isinstance(la, keras.layers.BatchNormalization) for la in model.layers)
    convs = [la for la in model.layers if isinstance(la, keras.layers.Conv2D)]
    assert convs and all(c.use_bias for c in convs)


def test_saved_model_reloads(tmp_path):
    model = build(model_cfg("mobilenet", alpha=0.25, attention="cbam"), (32, 32, 3), 10)
    x = np.random.rand(2, 32, 32, 3).astype("float32")
    model.save(tmp_path / "model.keras")
    again = load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(again(x, training=False), model(x, training=False), rtol=1e-5)


@pytest.mark.parametrize(("overrides", "words"), [
    ({"version": 3}, ["model.version", "3", "1, 2"]),
    ({"alpha": 0.0}, ["model.alpha", "0.0", "positive"]),
    ({"alpha": -0.5}, ["model.alpha", "-0.5"]),
    ({"first_stride": 4}, ["model.first_stride", "4", "1", "2"]),
    ({"attention": "eca"}, ["model.attention", "eca", "se"]),
    ({"activation": "relu7"}, ["model.activation", "relu7"]),
    ({"depth": 50}, ["model.depth", "alpha"]),
])
def test_bad_settings_are_named(overrides, words):
    with pytest.raises(KexpError) as err:
        build(model_cfg("mobilenet", **overrides), (32, 32, 3), 10)
    assert "\n" not in str(err.value)
    for word in words:
        assert word in str(err.value)


def test_text_shaped_inputs_are_refused():
    with pytest.raises(KexpError, match="images"):
        build(model_cfg("mobilenet_v2"), (100,), 10)
