"""Sampling a generator and judging the samples with the reference classifier.

Works from a generator alone (a run's model.keras): its inputs say the noise length and
whether it is conditional, its label embedding how many classes it knows.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kexp.tasks.gan import quality, reference

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

BATCH = 500  # images per forward pass when sampling or classifying
EPOCH_KID_SUBSETS = 10  # per-epoch KID: fewer subsets than the final 100 (each costs ~40 ms)


def latent_dim(generator: keras.Model) -> int:
    return int(generator.inputs[0].shape[-1])


def label_classes(generator: keras.Model) -> int:
    """How many classes a conditional generator was trained on (0: unconditional)."""
    if len(generator.inputs) < 2:
        return 0
    return int(generator.get_layer("label_embedding").input_dim)


def sample(generator: keras.Model, n: int, seed: int, labels: np.ndarray | None = None
           ) -> tuple[np.ndarray, np.ndarray | None]:
    """`n` images in [-1, 1] from noise drawn with `seed` (the same seed gives the same
    images), and their labels: `labels` when given, else every class in turn when the
    generator is conditional, else None."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((n, latent_dim(generator))).astype(np.float32)
    classes = label_classes(generator)
    if classes and labels is None:
        labels = (np.arange(n) % classes).astype(np.int32)
    images = []
    for start in range(0, n, BATCH):
        part = noise[start:start + BATCH]
        inputs = [part, labels[start:start + BATCH]] if classes else part
        images.append(np.asarray(generator(inputs, training=False), dtype=np.float32))
    return np.concatenate(images), (None if labels is None else np.asarray(labels, np.int32))


def to_unit(images: np.ndarray) -> np.ndarray:
    """Generator output in [-1, 1] -> the pipeline's [0, 1], what the classifier reads."""
    return (np.asarray(images, np.float32) + 1.0) / 2.0


def split_images(dataset: tf.data.Dataset, limit: int | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The images (in [0, 1]) and labels of a batched (x, y) split, at most `limit` of them."""
    xs, ys, count = [], [], 0
    for x, y in dataset.as_numpy_iterator():
        xs.append(x)
        ys.append(y)
        count += len(x)
        if limit is not None and count >= limit:
            break
    x, y = np.concatenate(xs), np.concatenate(ys)
    return (x, y) if limit is None else (x[:limit], y[:limit])


class Judge:
    """The reference classifier's view of a set of real images, against which samples are
    scored (FD, KID, classifier score; see kexp.tasks.gan.quality)."""

    def __init__(self, folder: Path, real_images: np.ndarray) -> None:
        self.model = reference.features(folder)
        self.real_features, _ = self.outputs(real_images)
        self.real_stats = quality.feature_stats(self.real_features)

    def outputs(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(penultimate features, softmax) of images in [0, 1]."""
        feats, probs = [], []
        for start in range(0, len(images), BATCH):
            f, p = self.model(images[start:start + BATCH], training=False)
            feats.append(np.asarray(f, np.float64))
            probs.append(np.asarray(p, np.float64))
        return np.concatenate(feats), np.concatenate(probs)

    def scores(self, images: np.ndarray, kid_subsets: int = 100
               ) -> tuple[dict[str, float], np.ndarray]:
        """The scores of images in [0, 1] against the real ones, and the softmax of each."""
        feats, probs = self.outputs(images)
        found = quality.quality_scores(feats, probs, self.real_features, self.real_stats,
                                       name=reference.NAME, kid_subsets=kid_subsets)
        return found, probs
