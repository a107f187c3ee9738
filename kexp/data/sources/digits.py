"""scikit-learn's bundled handwritten digits (1,797 8x8 grey images), on disk, no network."""

from __future__ import annotations

import numpy as np
from omegaconf import DictConfig
from sklearn.datasets import load_digits

from kexp.data import keys
from kexp.data.raw import RawSplits, from_arrays
from kexp.data.sources.split import holdout


def load_raw(cfg: DictConfig, seed: int) -> RawSplits:
    """Hold out data.test_fraction (stratified), then data.val_fraction of the rest."""
    test_fraction = keys.fraction(cfg, "test_fraction")
    val_fraction = keys.fraction(cfg, "val_fraction")
    digits = load_digits()
    x = digits.images[..., np.newaxis].astype(np.float32)  # (N, 8, 8, 1), values 0..16
    y = digits.target.astype(np.int32)
    rest, test = holdout(y, test_fraction, seed, "test_fraction")
    train, val = holdout(y[rest], val_fraction, seed, "val_fraction")
    train, val = rest[train], rest[val]
    return from_arrays(
        (x[train], y[train]),
        (x[val], y[val]),
        (x[test], y[test]),
        class_names=[str(c) for c in digits.target_names],
        auto_scale=16.0,
    )
