"""One run, several viewers: `logger=[mlflow,tensorboard]` logs every call to each tracker.

Free of TensorFlow at import, like kexp.tracking.tracker.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import keras

    from kexp.tracking.tracker import Tracker


class Trackers:
    """A `Tracker` that hands every call to each of `trackers`, in order; its run id is the
    first one that has one (MLflow's: `mlflow_run_id`, resume and `from_run=` name it)."""

    def __init__(self, trackers: Sequence[Tracker]) -> None:
        self.trackers = list(trackers)

    @property
    def run_id(self) -> str | None:
        return next((t.run_id for t in self.trackers if t.run_id is not None), None)

    @property
    def tracking_uri(self) -> str | None:
        """The MLflow store, if one of them logs to one (resume backfills its epochs)."""
        return next((t.tracking_uri for t in self.trackers if hasattr(t, "tracking_uri")), None)

    @property
    def run_dir(self) -> Path | None:
        return self.trackers[0].run_dir

    @run_dir.setter
    def run_dir(self, value: Path | None) -> None:
        for tracker in self.trackers:
            tracker.run_dir = value

    def check(self) -> None:
        for tracker in self.trackers:
            tracker.check()

    def start(self, run_name: str, params: dict[str, Any], tags: dict[str, str],
              resume: str | None = None) -> None:
        """Start each run; `resume` is the first tracker's run id (the others start anew in
        the same run directory: a TensorBoard tracker appends to its event files)."""
        for tracker in self.trackers:
            tracker.start(run_name, params, tags, resume)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        for tracker in self.trackers:
            tracker.log_metrics(metrics, step)

    def log_params(self, params: dict[str, Any]) -> None:
        for tracker in self.trackers:
            tracker.log_params(params)

    def log_artifact(self, path: Path, folder: str | None = None) -> None:
        for tracker in self.trackers:
            tracker.log_artifact(path, folder)

    def log_image(self, path: Path, key: str, step: int) -> None:
        for tracker in self.trackers:
            tracker.log_image(path, key, step)

    def log_model(self, model: keras.Model) -> None:
        for tracker in self.trackers:
            tracker.log_model(model)

    def finish(self, status: str) -> None:
        """Finish every tracker, even when one of them raises (the first error is raised)."""
        failure: Exception | None = None
        for tracker in self.trackers:
            try:
                tracker.finish(status)
            except Exception as exc:
                failure = failure or exc
        if failure is not None:
            raise failure

    def kill_stale_children(self) -> int:
        return sum(tracker.kill_stale_children() for tracker in self.trackers)

    def callback(self) -> keras.callbacks.Callback:
        """One callback that calls each tracker's own."""
        import keras

        return keras.callbacks.CallbackList([t.callback() for t in self.trackers])
