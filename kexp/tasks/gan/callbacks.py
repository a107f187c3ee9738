"""What a GAN run does after every epoch: score samples against the validation images (the
monitor) and draw the fixed noise's grid (kept in the run directory, logged to MLflow with
its epoch, so the run page shows training progress)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np

from kexp.tasks.gan import judge, pictures
from kexp.tasks.gan.task import SCORES
from kexp.training.callbacks import PeriodicScores


class QualityMonitor(PeriodicScores):
    """`val_fd_refcnn`, `val_kid_refcnn` and `val_cs_refcnn` in the epoch logs: `num_samples`
    images from the same noise every time (so epochs differ by the generator only) against
    the validation split, every `every` epochs, the first and the last (repeated between)."""

    def __init__(self, reference_dir: Path, val_images: np.ndarray, num_samples: int,
                 every: int, seed: int, history: dict[str, list[float]] | None = None) -> None:
        super().__init__(every, [f"val_{k}" for k in SCORES], history)
        self.reference_dir, self.val_images = reference_dir, val_images
        self.num_samples, self.seed = num_samples, seed
        self.judge: judge.Judge | None = None

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.judge = judge.Judge(self.reference_dir, self.val_images)

    def score(self) -> dict[str, float] | None:
        images, _ = judge.sample(self.model.generator, self.num_samples, self.seed)
        if not np.isfinite(images).all():  # the guard fails the run on its loss
            return None
        found, _ = self.judge.scores(judge.to_unit(images), judge.EPOCH_KID_SUBSETS)
        return {f"val_{k}": v for k, v in found.items()}


class FixedNoiseGrids(keras.callbacks.Callback):
    """The fixed noise's 10 x 10 grid after every epoch: <run>/grids/epoch_NNN.png, logged to
    the tracker with its epoch as the step."""

    def __init__(self, out: Path, tracker: Any) -> None:
        super().__init__()
        self.folder, self.tracker = out / pictures.GRID_DIR, tracker

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        path = pictures.save_grid(self.model.fixed_grid_images(),
                                  self.folder / f"epoch_{epoch + 1:03d}.png", columns=10)
        self.tracker.log_image(path, key="samples", step=epoch + 1)
