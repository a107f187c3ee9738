"""The Keras callback that logs a run's epochs to its tracker (imports Keras, unlike the rest
of kexp.tracking, so that `kexp.sync` can log a run without TensorFlow)."""

from __future__ import annotations

from typing import Protocol

import keras


class EpochLog(Protocol):
    """What the callback needs of a tracker (kexp.tracking.tracker.MlflowTracker has it): a
    place to say where the run is, for its warnings, and a way to log numbers."""

    position: str

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None: ...


class EpochMetrics(keras.callbacks.Callback):
    """Logs every epoch's train/val metrics and learning rate, step = epoch index (0-based,
    as history.csv counts them), and tells the tracker which epoch it is in."""

    def __init__(self, tracker: EpochLog) -> None:
        super().__init__()
        self.tracker = tracker

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.tracker.position = f"epoch {epoch + 1}"

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs:
            self.tracker.log_metrics(logs, step=epoch)

    def on_train_end(self, logs: dict | None = None) -> None:
        self.tracker.position = "the end of training"


class TensorBoardEpochs(EpochMetrics):
    """EpochMetrics for a `kexp.tracking.tensorboard.TensorBoardTracker`: the model's graph
    when training starts, and (`histograms`) the weights after every epoch."""

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.tracker.log_graph(self.model)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        super().on_epoch_end(epoch, logs)
        self.tracker.log_histograms(self.model, step=epoch)
