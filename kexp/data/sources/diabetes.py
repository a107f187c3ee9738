"""scikit-learn's bundled diabetes table (Efron et al. 2004): 442 patients, 10 real features, and
the disease progression one year later to predict (a real number, 25..346). On disk, no network.
"""

from __future__ import annotations

import numpy as np
from omegaconf import DictConfig
from sklearn.datasets import load_diabetes

from kexp.data import keys
from kexp.data.raw import RawSplits, from_arrays
from kexp.data.sources.split import holdout
from kexp.data.sources.table import standardizer, targets_kind
from kexp.errors import KexpError

TARGET = "progression"


def load_raw(cfg: DictConfig, seed: int) -> RawSplits:
    """Hold out data.test_fraction, then data.val_fraction of the rest (seeded, not stratified);
    standardize the raw features with the training split's mean and std."""
    # the task's targets (data.targets: ${task.targets}) must be real; without a task, they are
    kind = targets_kind(cfg, "real", unresolved="real")
    if kind != "real":
        raise KexpError(f"data.targets: {kind}, but data=diabetes predicts a real number (the "
                        f"disease progression); use task=regression")
    test_fraction = keys.fraction(cfg, "test_fraction")
    val_fraction = keys.fraction(cfg, "val_fraction")
    table = load_diabetes(scaled=False)  # raw units (age in years, bmi, ...), not sklearn's scaling
    x = table.data.astype(np.float64)
    y = table.target.astype(np.float32)[:, np.newaxis]
    rest, test = holdout(y, test_fraction, seed, "test_fraction", stratify=False)
    train, val = holdout(y[rest], val_fraction, seed, "val_fraction", stratify=False)
    train, val = rest[train], rest[val]
    mean, std = standardizer(x[train])

    def features(index: np.ndarray) -> np.ndarray:
        return ((x[index] - mean) / std).astype(np.float32)

    return from_arrays(
        (features(train), y[train]),
        (features(val), y[val]),
        (features(test), y[test]),
        class_names=[],
        target_names=[TARGET],
        feature_names=[str(name) for name in table.feature_names],
    )
