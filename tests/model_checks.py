"""Checks that model builders of several families share: one-line errors, class probabilities,
parameter counts, and the knobs that every image family takes.

Not a test module itself: the test_model_*.py files call these with their own models.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import keras
import numpy as np
import pytest

from kexp.errors import KexpError


@contextmanager
def one_line_error(*words: str) -> Iterator[None]:
    """The block must raise a KexpError whose message is one line holding every word."""
    with pytest.raises(KexpError) as err:
        yield
    message = str(err.value)
    assert "\n" not in message
    for word in words:
        assert word in message


def assert_class_probabilities(probs, n: int, classes: int) -> None:
    """n rows of `classes` probabilities that sum to 1."""
    probs = keras.ops.convert_to_numpy(probs)
    assert probs.shape == (n, classes)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def trainable_params(model: keras.Model) -> int:
    """Parameters the optimizer trains: what papers count (no BN moving statistics)."""
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def layers_of(model: keras.Model, kind: type) -> list[keras.layers.Layer]:
    return [layer for layer in model.layers if isinstance(layer, kind)]


# ------------------------------------------------------------------------------ image models

# bad settings that every image family names in one line: (overrides, input shape, words)
SHARED_IMAGE_ERRORS = [
    ({"activation": "relu7"}, (32, 32, 3), ["model.activation", "relu7"]),
    ({}, (100,), ["images", "(100,)"]),
]


def assert_random_images_give_class_probabilities(model: keras.Model, shape: tuple[int, ...],
                                                  classes: int) -> None:
    probs = model(np.random.rand(2, *shape).astype("float32"), training=False)
    assert_class_probabilities(probs, 2, classes)


def assert_only_imagenet_depths_pad(imagenet: keras.Model, imagenet_last: str,
                                    cifar: keras.Model, cifar_last: str) -> None:
    """On 28x28 inputs: an ImageNet depth pads to 32x32 and ends 32x down at 1x1 (layer
    `imagenet_last`); a CIFAR depth does not pad and ends 4x down at 7x7 (layer `cifar_last`)."""
    assert imagenet.get_layer("pad_to_fit").output.shape[1:3] == (32, 32)
    assert imagenet.get_layer(imagenet_last).output.shape[1:3] == (1, 1)  # 32x down
    assert not any(layer.name == "pad_to_fit" for layer in cifar.layers)
    assert cifar.get_layer(cifar_last).output.shape[1:3] == (7, 7)


def assert_shared_image_knobs(model: keras.Model, *, initializer: type, activation: str,
                              activations: int) -> None:
    """A model built with batch_norm=False, a kernel_initializer and an activation: every conv
    keeps its bias and has that initializer, and `activations` Activation layers compute
    `activation`."""
    convs = layers_of(model, keras.layers.Conv2D)
    assert all(c.use_bias for c in convs)  # no batch norm to cancel a bias
    assert not layers_of(model, keras.layers.BatchNormalization)
    assert all(isinstance(c.kernel_initializer, initializer) for c in convs)
    acts = [a.activation.__name__ for a in layers_of(model, keras.layers.Activation)]
    assert acts.count(activation) == activations
