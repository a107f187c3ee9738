"""`task=classification`: which class an example belongs to.

Every loss reads the same integer labels; each picks the head output it needs (softmax
probabilities, or linear scores for the hinge losses). Whatever the loss, a run reports
accuracy, an unsmoothed cross-entropy and the expected calibration error on the test split,
so runs that trained with different losses compare on the same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kexp.config import is_number
from kexp.errors import KexpError
from kexp.tasks.base import Task

if TYPE_CHECKING:
    import keras
    from omegaconf import DictConfig

    from kexp.data import DataBundle, DataSpec

LINEAR_HEAD_LOSSES = ("hinge", "squared_hinge")  # want scores, not probabilities
ECE_BINS = 15


def _fraction_below_one(v: Any) -> bool:
    return is_number(v) and 0 <= v < 1


def _class_weights(v: Any) -> bool:
    return v is None or (isinstance(v, (list, tuple)) and len(v) > 0 and
                         all(is_number(w) and w >= 0 for w in v))


class Classification(Task):
    """Softmax (or linear, for hinge) head, integer labels, accuracy as the monitor."""

    LOSSES = ("cross_entropy", "focal", "mse", "hinge", "squared_hinge", "kl_divergence")
    METRICS = ("accuracy", "cross_entropy")
    TARGETS = "classes"
    KNOBS = {
        "label_smoothing": (_fraction_below_one, "a number in [0, 1)"),
        "gamma": (lambda v: is_number(v) and v >= 0, "a number >= 0"),
        "class_weights": (_class_weights, "null or a list of one weight >= 0 per class"),
    }
    CURVE_METRIC = "accuracy"

    @property
    def probabilities(self) -> bool:
        return self.loss not in LINEAR_HEAD_LOSSES

    def check_data(self, spec: DataSpec, data_name: str) -> None:
        if getattr(spec, "target_names", None) is not None:
            raise KexpError(f"task=classification needs class labels, but data={data_name} has "
                            f"real-valued targets; use task=regression")
        if spec.num_classes < 2:
            raise KexpError(f"task=classification needs at least two classes; data={data_name} "
                            f"has {spec.num_classes}")
        weights = self.settings.get("class_weights")
        if weights is not None and len(weights) != spec.num_classes:
            raise KexpError(f"task.class_weights: {len(weights)} weights for "
                            f"{spec.num_classes} classes; give one per class")

    def build_model(self, model_cfg: DictConfig, spec: DataSpec,
                    allow_targets: Sequence[str] = ()) -> keras.Model:
        """The backbone with this task's head; a builder with its own softmax head (one that
        takes num_classes, kexp's contract before tasks) is used whole with a softmax loss."""
        from kexp import models

        if self.probabilities and models.has_own_head(model_cfg, allow_targets):
            return models.backbone(model_cfg, spec.input_shape, vocab_size=spec.vocab_size,
                                   allow_targets=allow_targets, num_classes=spec.num_classes)
        return super().build_model(model_cfg, spec, allow_targets)

    def head(self, features: Any, spec: DataSpec, model_cfg: DictConfig) -> Any:
        from kexp.models import heads

        l1, l2 = heads.penalties(model_cfg)
        return heads.class_scores(features, spec.num_classes, probabilities=self.probabilities,
                                  l1=l1, l2=l2)

    def compile_args(self, spec: DataSpec) -> dict[str, Any]:
        import keras

        return {"loss": self.keras_loss(spec.num_classes),
                "metrics": [keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
                            keras.metrics.SparseCategoricalCrossentropy(
                                name="cross_entropy", from_logits=not self.probabilities)]}

    def keras_loss(self, num_classes: int) -> keras.losses.Loss:
        """The Keras loss `task.loss` names, reading integer labels."""
        import keras

        from kexp.tasks.losses import OnOneHot

        smoothing = float(self.settings.get("label_smoothing", 0.0) or 0.0)
        if self.loss == "cross_entropy" and not smoothing:
            return keras.losses.SparseCategoricalCrossentropy()  # no one-hot: what kexp always ran
        weights = self.settings.get("class_weights")
        inner = {
            "cross_entropy": lambda: keras.losses.CategoricalCrossentropy(),
            # alpha 1 unless class weights are given: with gamma 0 focal is cross-entropy
            "focal": lambda: keras.losses.CategoricalFocalCrossentropy(
                alpha=list(weights) if weights else 1.0,
                gamma=float(self.settings.get("gamma", 2.0))),
            "mse": lambda: keras.losses.MeanSquaredError(),
            "hinge": lambda: keras.losses.Hinge(),  # maps the one-hot {0, 1} to {-1, +1}
            "squared_hinge": lambda: keras.losses.SquaredHinge(),
            "kl_divergence": lambda: keras.losses.KLDivergence(),
        }[self.loss]()
        if smoothing and self.loss not in ("cross_entropy", "kl_divergence"):
            raise KexpError(f"task.label_smoothing: only cross_entropy and kl_divergence smooth "
                            f"their targets, not task.loss={self.loss}")
        return OnOneHot(inner, num_classes, label_smoothing=smoothing, name=self.loss)

    def evaluate(self, model: keras.Model, data: DataBundle, out: Path
                 ) -> tuple[list[Path], dict[str, float], dict[str, float]]:
        """The error analysis (kexp.analysis): confusion matrix, per-class scores, the first
        misclassified examples; test_ece goes into metrics.json, the per-class scores only to
        MLflow."""
        from kexp import analysis

        found = analysis.predict(model, data, softmax=not self.probabilities)
        paths, scores = analysis.analyze(model, data, out, found=found)
        ece = analysis.expected_calibration_error(found.confidence, found.y_pred == found.y_true,
                                                  ECE_BINS)
        return paths, {"test_ece": ece}, scores
