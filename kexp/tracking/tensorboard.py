"""`logger=tensorboard`: a run's record as TensorBoard event files in <run_dir>/tensorboard/.

The same `Tracker` calls MLflow gets, written with `tf.summary`: every epoch's metrics as
scalars (step = the epoch index, as in MLflow), the resolved config through the HParams
plugin (so TensorBoard's own compare view lines runs up), the model's graph when training
starts, the run's PNG pictures (confusion matrix, a GAN's grids) as images and a language
model's samples as text. `make tensorboard` serves every run under logs/.

Writing never costs a run: the first failure (a full disk) is one warning, and the run
directory keeps everything. TensorFlow is imported when the run starts, not with this module
(`python -m kexp` makes its tracker before TensorFlow loads).
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kexp.tracking.params import flatten

if TYPE_CHECKING:
    import keras

log = logging.getLogger(__name__)

EVENTS_DIR = "tensorboard"  # in the run directory
# what TensorBoard's hparams plugin reads as a session's end (api_pb2.Status values)
_STATUS = {"FINISHED": "STATUS_SUCCESS", "FAILED": "STATUS_FAILURE", "KILLED": "STATUS_ABORTED"}


class TensorBoardTracker:
    """One run's event files: <run_dir>/tensorboard/, or, for a run without a directory of
    its own (a tuning trial), <log_dir>/tensorboard/<run name>_<time>/."""

    run_id = None  # TensorBoard has no run ids: a run is its folder

    def __init__(self, log_dir: Path, run_dir: Path | None = None,
                 histograms: bool = False) -> None:
        """`histograms`: also every weight's histogram after each epoch."""
        self.log_dir, self.run_dir, self.histograms = Path(log_dir), run_dir, histograms
        self.position = "the start of the run"  # where training is (EpochMetrics sets it)
        self.folder: Path | None = None
        self._writer: Any = None

    def check(self) -> None: ...

    def start(self, run_name: str, params: dict[str, Any], tags: dict[str, str],
              resume: str | None = None) -> None:
        """Open the writer and record the hyperparameters (none on a resumed run: `params`
        is empty there and the first process recorded them; its event files stay)."""
        import tensorflow as tf

        if self.run_dir is not None:
            self.folder = Path(self.run_dir) / EVENTS_DIR
        else:
            stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
            self.folder = self.log_dir / EVENTS_DIR / f"{run_name}_{stamp}_{os.getpid()}"
        self.folder.mkdir(parents=True, exist_ok=True)
        self._writer = tf.summary.create_file_writer(str(self.folder))
        if params:
            self._write(lambda: _hparams(params))
        if tags:
            self._write(lambda: tf.summary.text(
                "tags", "\n\n".join(f"**{k}**: {v}" for k, v in sorted(tags.items())), step=0))
        log.info("TensorBoard events in %s", self.folder)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Scalars at `step` (the epoch index; 0 for the run card and the final metrics)."""
        import tensorflow as tf

        self._write(lambda: [tf.summary.scalar(k, float(v), step=step or 0)
                             for k, v in metrics.items()])

    def log_params(self, params: dict[str, Any]) -> None:
        """Nothing: the HParams plugin keeps the hyperparameters a run started with."""

    def log_artifact(self, path: Path, folder: str | None = None) -> None:
        """A PNG as an image, a .txt in `folder` (a language model's samples/epoch_003.txt)
        as text; the step is the number in the file's name (0 without one). Other files stay
        in the run directory only."""
        path = Path(path)
        if not path.exists():
            return
        tag = f"{folder}/{path.stem}" if folder and path.suffix == ".png" else path.stem
        if path.suffix == ".png":
            self.log_image(path, tag, _step(path))
        elif path.suffix == ".txt" and folder:
            import tensorflow as tf

            text = path.read_text(encoding="utf-8")
            self._write(lambda: tf.summary.text(folder, text, step=_step(path)))

    def log_image(self, path: Path, key: str, step: int) -> None:
        """A PNG as one step of the image series `key` (a GAN's grid after each epoch)."""
        if Path(path).exists():
            import tensorflow as tf

            self._write(lambda: tf.summary.image(
                key, tf.io.decode_png(tf.io.read_file(str(path)))[None], step=step))

    def log_model(self, model: keras.Model) -> None:
        """Nothing: the graph is written when training starts (`log_graph`), the model
        itself is model.keras in the run directory."""

    def log_graph(self, model: keras.Model) -> None:
        """The model as TensorBoard's Graphs tab shows it: Keras' layer graph (the conceptual
        view) and the forward pass's op graph, traced on the model's input specs."""
        import tensorflow as tf

        def write() -> None:
            try:
                specs = [tf.TensorSpec(x.shape, x.dtype) for x in model.inputs]
                forward = tf.function(lambda *xs: model(xs[0] if len(xs) == 1 else list(xs),
                                                        training=False))
                graph, layers = forward.get_concrete_function(*specs).graph, model.to_json()
            except Exception as exc:  # a subclassed model (a GAN's pair) has no input specs
                log.info("TensorBoard: no graph of %s (%s)", type(model).__name__,
                         type(exc).__name__)
                return
            meta = tf.compat.v1.SummaryMetadata()
            meta.plugin_data.plugin_name = "graph_keras_model"  # the graph plugin's name
            meta.plugin_data.content = b"1"
            tf.summary.write("keras", tf.constant(layers), step=0, metadata=meta)
            tf.summary.graph(graph)

        self._write(write)

    def log_histograms(self, model: keras.Model, step: int) -> None:
        """Every weight's histogram at `step` (`logger.tensorboard.histograms=true`)."""
        if self.histograms:
            import tensorflow as tf

            self._write(lambda: [tf.summary.histogram(w.path, w.numpy(), step=step)
                                 for w in model.weights])

    def finish(self, status: str) -> None:
        """The HParams session's end (its status column), then the files are closed."""
        if self._writer is None:
            return
        import tensorflow as tf
        from tensorboard.plugins.hparams import api_pb2
        from tensorboard.plugins.hparams import summary as hparams_summary

        end = hparams_summary.session_end_pb(getattr(api_pb2, _STATUS.get(status,
                                                                           "STATUS_UNKNOWN")))
        self._write(lambda: tf.summary.experimental.write_raw_pb(end.SerializeToString(),
                                                                 step=0))
        try:
            self._writer.close()
        except Exception as exc:  # the events written so far are on disk
            log.warning("TensorBoard events in %s: could not close (%s)", self.folder, exc)
        self._writer = None

    def kill_stale_children(self) -> int:
        return 0

    def callback(self) -> keras.callbacks.Callback:
        from kexp.tracking.callback import TensorBoardEpochs

        return TensorBoardEpochs(self)

    def _write(self, call: Callable[[], object]) -> None:
        """`call` with this run's writer as the default; the first failure switches the
        tracker off for good, with one warning."""
        if self._writer is None:
            return
        try:
            with self._writer.as_default():
                call()
        except Exception as exc:
            log.warning("TensorBoard events in %s: writing failed at %s (%s); training goes "
                        "on, the run directory keeps everything", self.folder, self.position,
                        str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            self._writer = None


def _hparams(params: dict[str, Any]) -> None:
    """The resolved config, dotted keys, as one HParams session (numbers stay numbers). No
    trial id: the plugin would merge the runs sharing one (a run name) into one row."""
    from tensorboard.plugins.hparams import api as hp

    hp.hparams(flatten(params, typed=True))


def _step(path: Path) -> int:
    """epoch_003.png -> 3; a name without a number -> 0."""
    found = re.findall(r"\d+", path.stem)
    return int(found[-1]) if found else 0
