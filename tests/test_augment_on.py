"""data.augment_on=model: the pipeline leaves batches alone, the model augments in training only."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
from omegaconf import OmegaConf

from kexp import models
from kexp.data import load
from kexp.data.augment import with_augmentation
from kexp.errors import KexpError
from tests.conftest import compose_train, run_kexp

REPO = Path(__file__).resolve().parents[1]


def data_cfg(config: str = "digits", /, **overrides):
    """conf/data/<config>.yaml with `overrides` merged in (nested keys as dicts)."""
    return OmegaConf.merge(OmegaConf.load(REPO / "conf" / "data" / f"{config}.yaml"), overrides)


AUGMENTED = {"augment": {"crop_padding": 2, "horizontal_flip": True}}


def train_images(cfg) -> np.ndarray:
    """The first epoch's training images, in a canonical order (the pipeline shuffles)."""
    x = np.concatenate([x.numpy() for x, _ in load(cfg, 64, 0).train])
    flat = x.reshape(len(x), -1)
    return flat[np.lexsort(flat.T[::-1])]


def tiny_cnn(input_shape=(8, 8, 1)) -> keras.Model:
    cfg = compose_train(["model=cnn", "model.filters=[4]", "model.dense_units=[8]"]).model
    return models.build(cfg, input_shape, 10)


def test_pipeline_leaves_training_batches_unaugmented():
    plain = train_images(data_cfg())
    on_model = train_images(data_cfg(**AUGMENTED, augment_on="model"))
    in_pipeline = train_images(data_cfg(**AUGMENTED, augment_on="pipeline"))
    assert np.array_equal(on_model, plain)
    assert not np.array_equal(in_pipeline, plain)


def test_wrapped_model_augments_in_training_only_and_costs_the_same():
    model = tiny_cnn()
    wrapped = with_augmentation(model, data_cfg(**AUGMENTED, augment_on="model"), seed=0)
    assert wrapped is not model and wrapped.name == model.name
    assert [layer.name for layer in wrapped.layers[1:3]] == ["augment_crop", "augment_flip"]
    x = np.random.default_rng(0).random((16, 8, 8, 1), dtype=np.float32)
    first, second = wrapped(x, training=True), wrapped(x, training=True)
    assert not np.allclose(first, second)
    np.testing.assert_array_equal(wrapped(x, training=False), model(x, training=False))
    np.testing.assert_array_equal(wrapped.predict(x, verbose=0), model.predict(x, verbose=0))
    # the augmentation adds no weights and no FLOPs: the run card is the plain model's
    assert wrapped.count_params() == model.count_params() > 0
    assert len(wrapped.trainable_weights) == len(model.trainable_weights)
    assert models.count_flops(wrapped) == models.count_flops(model) > 0


def test_augmentation_is_a_per_image_window_of_the_zero_padded_image():
    cfg = data_cfg(augment={"crop_padding": 2, "horizontal_flip": False}, augment_on="model")
    identity = keras.Sequential([keras.Input((6, 5, 1)), keras.layers.Identity()])
    wrapped = with_augmentation(identity, cfg, seed=1)
    x = np.arange(32 * 30, dtype=np.float32).reshape(32, 6, 5, 1) + 1
    out = wrapped(x, training=True).numpy()
    padded = np.pad(x, [(0, 0), (2, 2), (2, 2), (0, 0)])
    offsets = set()
    for i in range(len(x)):
        windows = [(r, c) for r in range(5) for c in range(5)
                   if np.array_equal(padded[i, r:r + 6, c:c + 5], out[i])]
        assert windows, f"image {i} is not a window of its zero-padded self"
        offsets.add(windows[0])
    assert len(offsets) > 5  # each image draws its own offset


def test_wrapped_model_saves_and_reloads(tmp_path):
    wrapped = with_augmentation(tiny_cnn(), data_cfg(**AUGMENTED, augment_on="model"), seed=0)
    x = np.random.default_rng(1).random((4, 8, 8, 1), dtype=np.float32)
    wrapped.save(tmp_path / "model.keras")
    loaded = models.load_model(tmp_path / "model.keras")
    assert loaded.name == wrapped.name
    np.testing.assert_allclose(loaded.predict(x, verbose=0), wrapped.predict(x, verbose=0),
                               rtol=1e-6)


def test_no_wrapping_without_model_augmentation():
    model = tiny_cnn()
    assert with_augmentation(model, data_cfg(**AUGMENTED), seed=0) is model  # pipeline default
    assert with_augmentation(model, data_cfg(augment_on="model"), seed=0) is model  # digits: off
    tokens = keras.Input((5,), dtype="int32")
    text = keras.Model(tokens, keras.layers.Dense(2)(keras.layers.Embedding(9, 3)(tokens)))
    assert with_augmentation(text, data_cfg(**AUGMENTED, augment_on="model"), seed=0) is text


def test_bad_values_are_named():
    bad = data_cfg(augment_on="gpu")
    with pytest.raises(KexpError, match=r"^data.augment_on: 'gpu' must be pipeline or model$"):
        load(bad, 8, 0)
    with pytest.raises(KexpError, match=r"data.augment_on: 'gpu'"):
        with_augmentation(tiny_cnn(), bad, seed=0)
    too_much = data_cfg(augment={"crop_padding": 8}, augment_on="model")
    with pytest.raises(KexpError, match=r"data.augment.crop_padding: 8 must be smaller"):
        with_augmentation(tiny_cnn(), too_much, seed=0)


def test_bad_value_is_one_line_before_tensorflow(workdir):
    done = run_kexp(["data.augment_on=gpu", "logger=none"], workdir, timeout=60)
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert "data.augment_on" in line and "'gpu'" in line and "pipeline or model" in line


def test_cifar10_through_tfds_mock_with_augment_on_model(tmp_path):
    import tensorflow_datasets as tfds

    from kexp.recipe import train

    cfg = compose_train(["model=cnn", "model.filters=[8]", "model.dense_units=[16]",
                         "data=cifar10", "data.augment_on=model", "debug=fast", "logger=none",
                         "trainer.batch_size=16", f"paths.log_dir={tmp_path}"])
    with tfds.testing.mock_data(num_examples=32):
        metrics = train(cfg)
    assert metrics["epochs"] == 1 and 0.0 <= metrics["test_accuracy"] <= 1.0
    plain = models.build(cfg.model, (32, 32, 3), 10)
    assert metrics["params"] == plain.count_params()
    assert metrics["flops"] == models.count_flops(plain)
    (saved,) = (tmp_path / "runs").glob("*/model.keras")
    assert OmegaConf.load(saved.parent / "config.yaml").data.augment_on == "model"
    assert "augment_crop" in [layer.name for layer in models.load_model(saved).layers]
