"""Loss wrappers the tasks need around Keras' own losses (which do the arithmetic).

The pipeline hands over integer class labels and targets in their own units; these wrappers
turn them into what a Keras loss wants inside the loss itself, so the data path, the metrics
and a saved model stay the same whatever loss a run picks.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kexp")
class OnOneHot(keras.losses.Loss):
    """`loss` on one-hot targets made from integer labels, optionally smoothed: the one-hot
    weight (1 - label_smoothing) plus label_smoothing / num_classes on every class."""

    def __init__(self, loss: keras.losses.Loss, num_classes: int, label_smoothing: float = 0.0,
                 name: str | None = None, reduction: str = "sum_over_batch_size",
                 dtype: str | None = None) -> None:
        super().__init__(name=name or loss.name, reduction=reduction, dtype=dtype)
        self.loss = loss
        self.num_classes = int(num_classes)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        target = ops.one_hot(labels, self.num_classes, dtype=y_pred.dtype)
        if self.label_smoothing:
            target = target * (1.0 - self.label_smoothing) + \
                self.label_smoothing / self.num_classes
        return self.loss.call(target, y_pred)

    def get_config(self) -> dict:
        return {**super().get_config(), "loss": keras.saving.serialize_keras_object(self.loss),
                "num_classes": self.num_classes, "label_smoothing": self.label_smoothing}

    @classmethod
    def from_config(cls, config: dict) -> OnOneHot:
        config = dict(config)
        config["loss"] = keras.saving.deserialize_keras_object(config["loss"])
        return cls(**config)


@keras.saving.register_keras_serializable(package="kexp")
class Standardized(keras.losses.Loss):
    """`loss` on targets and predictions standardized with the training split's `mean` and
    `std`: the model predicts in the targets' units, the loss sees unit-scale numbers (and
    targets on different scales weigh alike)."""

    def __init__(self, loss: keras.losses.Loss, mean: Sequence[float], std: Sequence[float],
                 name: str | None = None, reduction: str = "sum_over_batch_size",
                 dtype: str | None = None) -> None:
        super().__init__(name=name or loss.name, reduction=reduction, dtype=dtype)
        self.loss = loss
        self.mean = [float(m) for m in mean]
        self.std = [float(s) for s in std]

    def call(self, y_true, y_pred):
        mean = ops.convert_to_tensor(self.mean, dtype=y_pred.dtype)
        std = ops.convert_to_tensor(self.std, dtype=y_pred.dtype)
        y_true = ops.reshape(ops.cast(y_true, y_pred.dtype), ops.shape(y_pred))
        return self.loss.call((y_true - mean) / std, (y_pred - mean) / std)

    def get_config(self) -> dict:
        return {**super().get_config(), "loss": keras.saving.serialize_keras_object(self.loss),
                "mean": self.mean, "std": self.std}

    @classmethod
    def from_config(cls, config: dict) -> Standardized:
        config = dict(config)
        config["loss"] = keras.saving.deserialize_keras_object(config["loss"])
        return cls(**config)
