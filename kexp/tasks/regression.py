"""`task=regression`: real-valued targets, one or several columns.

The loss sees targets standardized with the training split's mean and std; the model's head
maps its outputs back, so predictions, MAE and RMSE are in the targets' own units (R² does not
depend on the units).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kexp.config import is_number
from kexp.errors import KexpError
from kexp.plotting import pyplot
from kexp.tasks.base import Task

if TYPE_CHECKING:
    import keras
    from omegaconf import DictConfig

    from kexp.data import DataBundle, DataSpec

SCATTER_FILE = "predicted_vs_true.png"
RESIDUALS_FILE = "residuals.png"
WORST_FILE = "worst_predictions.csv"
WORST_ROWS = 25


class Regression(Task):
    """Linear head in the targets' units, MAE / RMSE / R² reported, RMSE as the monitor."""

    LOSSES = ("mse", "mae", "huber", "log_cosh")
    METRICS = ("mae", "rmse", "r2")
    TARGETS = "real"
    KNOBS = {"delta": (lambda v: is_number(v) and v > 0, "a positive number")}
    CURVE_METRIC = "rmse"

    def check_data(self, spec: DataSpec, data_name: str) -> None:
        if getattr(spec, "target_names", None) is None:
            raise KexpError(f"task=regression needs real-valued targets, but data={data_name} "
                            f"has class labels; use task=classification, or a table with a "
                            f"numeric target (data=diabetes, data=csv data.target=...)")

    def head(self, features: Any, spec: DataSpec, model_cfg: DictConfig) -> Any:
        from kexp.models import heads

        l1, l2 = heads.penalties(model_cfg)
        return heads.real_values(features, spec.target_mean, spec.target_std, l1=l1, l2=l2)

    def compile_args(self, spec: DataSpec) -> dict[str, Any]:
        import keras

        from kexp.tasks.losses import Standardized

        inner = {"mse": lambda: keras.losses.MeanSquaredError(),
                 "mae": lambda: keras.losses.MeanAbsoluteError(),
                 "huber": lambda: keras.losses.Huber(delta=float(self.settings.get("delta", 1))),
                 "log_cosh": lambda: keras.losses.LogCosh()}[self.loss]()
        return {"loss": Standardized(inner, spec.target_mean, spec.target_std, name=self.loss),
                "metrics": [keras.metrics.MeanAbsoluteError(name="mae"),
                            keras.metrics.RootMeanSquaredError(name="rmse"),
                            keras.metrics.R2Score(name="r2")]}

    def evaluate(self, model: keras.Model, data: DataBundle, out: Path
                 ) -> tuple[list[Path], dict[str, float], dict[str, float]]:
        """Predicted against true values, the residuals' histogram and the worst predictions
        (each target column)."""
        predicted = np.asarray(model.predict(data.test, verbose=0), dtype=np.float64)
        true = np.concatenate([np.asarray(y, dtype=np.float64).reshape(len(y), -1)
                               for _, y in data.test])
        names = list(data.spec.target_names)
        paths = [plot_predictions(true, predicted, names, out / SCATTER_FILE),
                 plot_residuals(true, predicted, names, out / RESIDUALS_FILE),
                 write_worst(true, predicted, names, out / WORST_FILE)]
        return paths, {}, {}

    def headline(self, metrics: dict[str, Any]) -> str:
        shown = [k for k in ("test_rmse", "test_mae", "test_r2") if k in metrics]
        return "  ".join(f"{k} {metrics[k]:.4f}" for k in shown)



def plot_predictions(true: np.ndarray, predicted: np.ndarray, names: list[str],
                     path: Path) -> Path:
    plt = pyplot()
    k = true.shape[1]
    fig, axes = plt.subplots(1, k, figsize=(4 * k, 4), squeeze=False)
    for j, ax in enumerate(axes[0]):
        ax.scatter(true[:, j], predicted[:, j], s=8, alpha=0.6)
        low, high = min(true[:, j].min(), predicted[:, j].min()), \
            max(true[:, j].max(), predicted[:, j].max())
        ax.plot([low, high], [low, high], color="grey", linewidth=1)  # perfect predictions
        ax.set_xlabel(f"true {names[j]}")
        ax.set_ylabel(f"predicted {names[j]}")
        ax.grid(alpha=0.3)
    return _save(fig, "test split: predicted against true", path)


def plot_residuals(true: np.ndarray, predicted: np.ndarray, names: list[str],
                   path: Path) -> Path:
    plt = pyplot()
    k = true.shape[1]
    fig, axes = plt.subplots(1, k, figsize=(4 * k, 3.5), squeeze=False)
    for j, ax in enumerate(axes[0]):
        ax.hist(predicted[:, j] - true[:, j], bins=30)
        ax.set_xlabel(f"predicted - true {names[j]}")
        ax.grid(alpha=0.3)
    return _save(fig, "test split: residuals", path)


def _save(fig: Any, title: str, path: Path) -> Path:
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    pyplot().close(fig)
    return path


def write_worst(true: np.ndarray, predicted: np.ndarray, names: list[str], path: Path,
                rows: int = WORST_ROWS) -> Path:
    """The test examples with the largest absolute error (summed over the target columns
    in standard deviations of the test targets), worst first, with their position."""
    scale = true.std(axis=0)
    scale[scale == 0] = 1.0
    error = (np.abs(predicted - true) / scale).sum(axis=1)
    worst = np.argsort(-error, kind="stable")[:rows]
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["test_index", *(f"true_{n}" for n in names),
                         *(f"predicted_{n}" for n in names)])
        for i in worst:
            writer.writerow([int(i), *(f"{v:.6g}" for v in true[i]),
                             *(f"{v:.6g}" for v in predicted[i])])
    return path
