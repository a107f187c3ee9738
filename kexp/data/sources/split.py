"""Hold out a fraction of labelled examples, stratified by class, reproducibly."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split

from kexp.errors import KexpError


def holdout(
    labels: np.ndarray, fraction: float, seed: int, key: str, stratify: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Shuffled indices (kept, held_out) with `fraction` of the examples held out.

    Stratified by `labels` when every class has at least two examples; `stratify=False` makes a
    plain seeded random split (real targets: `labels` then only gives the number of examples).
    `key` names the config key in errors. The indices stay shuffled so that `data.subset` (take
    the first N) still sees every class.
    """
    index = np.arange(len(labels))
    if stratify:
        try:
            kept, held = train_test_split(index, test_size=fraction, random_state=seed,
                                          stratify=labels)
            return kept, held
        except ValueError:
            # A class with a single example (or fewer held-out slots than classes) cannot be
            # stratified; a plain random split is the best that can be done.
            pass
    try:
        kept, held = train_test_split(index, test_size=fraction, random_state=seed)
    except ValueError as err:
        raise KexpError(
            f"data.{key}: cannot hold out {fraction} of {len(labels)} examples ({err})"
        ) from None
    return kept, held
