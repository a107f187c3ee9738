"""The output layers tasks put on a backbone's features (kexp.tasks chooses which).

Each head ends in a float32 layer, so mixed precision keeps the outputs (and the loss) stable.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import keras
from keras import layers

from kexp.models.layers import regularizer


def penalties(model_cfg: Mapping[str, object]) -> tuple[float, float]:
    """The head's (l1, l2): the backbone's `model.l1`/`model.l2`, 0 where it has none."""
    return float(model_cfg.get("l1", 0.0) or 0.0), float(model_cfg.get("l2", 0.0) or 0.0)


def class_scores(x, num_classes: int, *, probabilities: bool = True, l1: float = 0.0,
                 l2: float = 0.0):
    """Logits -> softmax (`probabilities`), or the logits themselves as float32 class scores
    (the linear head the hinge losses want)."""
    x = layers.Dense(num_classes, kernel_regularizer=regularizer(l1, l2), name="logits")(x)
    if probabilities:
        return layers.Activation("softmax", dtype="float32", name="probabilities")(x)
    return layers.Activation("linear", dtype="float32", name="scores")(x)


def real_values(x, mean: Sequence[float], std: Sequence[float], *, l1: float = 0.0,
                l2: float = 0.0):
    """One linear output per target, learned in standardized units (`mean`, `std` of the
    training targets) and mapped back, so the model predicts in the targets' own units."""
    x = layers.Dense(len(mean), kernel_regularizer=regularizer(l1, l2), dtype="float32",
                     name="standardized")(x)
    return layers.Rescaling(scale=[float(s) for s in std], offset=[float(m) for m in mean],
                            dtype="float32", name="predictions")(x)


def attach(backbone: keras.Model, head: Callable[[object], object]) -> keras.Model:
    """One functional model: `backbone`'s layers, then `head` on its output (no nesting, so
    layer names, the summary and the FLOP count read as one network)."""
    return keras.Model(backbone.input, head(backbone.output), name=backbone.name)
