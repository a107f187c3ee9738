"""trainer.precision: every option builds, compiles and trains a step the way Keras means it."""

from __future__ import annotations

import math

import keras
import pytest

from tests.conftest import compose_train

COMPUTE = {"float32": "float32", "mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}


def one_step(overrides: list[str]):
    """kexp.recipe.prepare on digits, then one model.fit step; returns the model and its loss."""
    from kexp.recipe import prepare

    cfg = compose_train(["model=mlp", "model.hidden_units=[16]", "data.subset=64",
                         "trainer.batch_size=32", "logger=none", *overrides])
    data, model = prepare(cfg)[:2]
    history = model.fit(data.train.take(1), epochs=1, verbose=0, shuffle=False)
    return model, history.history["loss"][-1]


@pytest.mark.parametrize("precision", list(COMPUTE))
def test_each_precision_trains_a_step(precision):
    model, loss = one_step([f"trainer.precision={precision}"])
    assert math.isfinite(loss)
    assert model.dtype_policy.name == precision
    assert model.get_layer("dense_0").compute_dtype == COMPUTE[precision]  # the policy is on
    assert model.layers[-1].compute_dtype == "float32"  # the output layer (softmax) stays float32
    assert model.outputs[0].dtype == "float32"
    assert {v.dtype for v in model.weights} == {"float32"}  # variables stay float32
    # Keras 3 compile() wraps the optimizer in a LossScaleOptimizer for mixed_float16 only
    # (bfloat16 has float32's exponent range and needs no loss scaling)
    scaled = isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert scaled == (precision == "mixed_float16")
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored


def test_mixed_float16_with_augmentation_in_the_model():
    model, loss = one_step(["trainer.precision=mixed_float16", "data.augment.crop_padding=1",
                            "data.augment.horizontal_flip=true", "data.augment_on=model"])
    assert math.isfinite(loss)
    assert [layer.name for layer in model.layers[1:3]] == ["augment_crop", "augment_flip"]
    assert {layer.compute_dtype for layer in model.layers[1:3]} == {"float32"}
    assert model.dtype_policy.name == "mixed_float16" and model.outputs[0].dtype == "float32"
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)


def test_a_fresh_session_frees_the_run_before_it():
    """A later run's fresh_session collects the cyclic garbage (a model) the run before it
    dropped, though every run freezes what survives its collection."""
    import gc
    import weakref

    from kexp.training.precision import fresh_session

    fresh_session()  # as a first run of the process does: freezes what is there
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    gone = weakref.ref(model)
    del model  # Keras models sit in reference cycles: only a collection frees them
    assert gone() is not None
    fresh_session()
    assert gone() is None
    assert gc.get_freeze_count() > 0
