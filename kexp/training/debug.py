"""The debug modes' pieces of a run (conf/debug): a profiler trace over a range of training
steps (`trainer.profile_steps`, debug=profile) and the overfit check (`trainer.overfit_loss`,
debug=overfit). The recipe asks this module for its callbacks and its metrics; with both keys
null (every run but these) it adds neither.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("kexp")

PROFILE_DIR = "profile"  # under the run directory: TensorBoard's --logdir
# what trainer.overfit_loss switches off, where the composed config has it: a model that
# cannot memorize a few batches with these on may still be right, so they would blur the check
REGULARIZATION: dict[str, Any] = {
    "model.dropout": 0.0, "model.recurrent_dropout": 0.0, "model.l1": 0.0, "model.l2": 0.0,
    "optimizer.weight_decay": 0.0, "task.label_smoothing": 0.0,
    "data.augment.crop_padding": 0, "data.augment.horizontal_flip": False,
    "data.shuffle_buffer": 1,  # a buffer of one keeps the order: the same batches every epoch
}


def for_overfitting(cfg: DictConfig) -> None:
    """With `trainer.overfit_loss` set, REGULARIZATION applied to the keys `cfg` has, in place
    (so config.yaml records what ran, and `cfg.paths.output_dir` still names the run after
    `train(cfg)`); a model without dropout is left as it is: Hydra cannot set a key only
    where it exists, which is why this is code and not debug/overfit.yaml."""
    if cfg.trainer.get("overfit_loss") is None:
        return
    changed = []
    for key, off in REGULARIZATION.items():
        value = OmegaConf.select(cfg, key, default=None)
        if value is not None and value != off:
            OmegaConf.update(cfg, key, off, merge=False)
            changed.append(f"{key}={value}")
    log.info("debug=overfit: switched off %s", ", ".join(changed) or "nothing (none was on)")


def overfit_verdict(history: dict[str, list[float]], trainer: DictConfig) -> dict[str, Any]:
    """{"overfit_passed", "overfit_loss"} for metrics.json when `trainer.overfit_loss` is set
    (empty otherwise), and one line saying whether the final training loss fell below it."""
    threshold = trainer.get("overfit_loss")
    if threshold is None:
        return {}
    losses = history.get("loss") or []
    if not losses:  # a GAN logs d_loss and g_loss: no one loss to memorize with
        log.warning("debug=overfit: the run logged no training loss to check")
        return {"overfit_passed": False, "overfit_loss": threshold}
    final, epochs = float(losses[-1]), len(losses)
    passed = final < threshold
    if passed:
        log.info("debug=overfit: training loss %.4g < %g after %d epochs: model, loss and data "
                 "fit together", final, threshold, epochs)
    else:
        log.warning("debug=overfit: training loss %.4g did NOT fall below %g in %d epochs: "
                    "check the loss, the labels and the learning rate (or raise "
                    "trainer.epochs)", final, threshold, epochs)
    return {"overfit_passed": passed, "overfit_loss": threshold,
            "overfit_final_loss": round(final, 6)}


def callbacks(trainer: DictConfig, out: Path, tracker: Any) -> list[keras.callbacks.Callback]:
    """The debug callbacks `trainer` asks for: the profiler when `profile_steps` is set, the
    early end of an overfit check when `overfit_loss` is."""
    found: list[keras.callbacks.Callback] = []
    steps = trainer.get("profile_steps")
    if steps is not None:
        found.append(StepProfiler(int(steps[0]), int(steps[1]), out / PROFILE_DIR, tracker))
    if trainer.get("overfit_loss") is not None:
        found.append(StopBelowLoss(float(trainer.overfit_loss)))
    return found


class StopBelowLoss(keras.callbacks.Callback):
    """Ends training after the first epoch whose training loss is below `threshold`: the
    check has its answer, and more epochs only memorize further."""

    def __init__(self, threshold: float) -> None:
        super().__init__()
        self.threshold = threshold

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs and "loss" in logs and float(logs["loss"]) < self.threshold:
            self.model.stop_training = True


class StepProfiler(keras.callbacks.Callback):
    """`tf.profiler` from training step `first` to `last` (1-based, counted over the run, so a
    range may cross epochs), the trace in `logdir` and logged to the tracker under profile/.

    Batch hooks fire once per tf.function call: with several steps a call the trace starts at
    the call that reaches `first` and stops after the one that reaches `last`, so it covers
    whole calls (debug=profile sets trainer.steps_per_execution=1)."""

    def __init__(self, first: int, last: int, logdir: Path, tracker: Any = None) -> None:
        super().__init__()
        self.first, self.last, self.logdir, self.tracker = first, last, Path(logdir), tracker
        self.done = 0  # steps finished so far
        self.active = self.finished = False
        self._begin = 0

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        self._begin = batch
        per_call = max(1, int(getattr(self.model, "steps_per_execution", 1) or 1))
        if not (self.active or self.finished) and self.done + per_call >= self.first:
            tf.profiler.experimental.start(str(self.logdir))
            self.active = True

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.done += max(1, batch - self._begin + 1)  # Keras 3: the call's first and last step
        if self.active and self.done >= self.last:
            self._stop()

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.active:  # training ended inside the range: keep what was traced
            log.warning("debug=profile: training ran %d steps, fewer than the last of "
                        "trainer.profile_steps=[%d, %d]", self.done, self.first, self.last)
            self._stop()
        elif not self.finished:
            log.warning("debug=profile: no trace; training ran %d steps, fewer than the "
                        "first of trainer.profile_steps=[%d, %d]", self.done, self.first,
                        self.last)

    def _stop(self) -> None:
        tf.profiler.experimental.stop()
        self.active, self.finished = False, True
        if self.tracker is not None:
            for path in sorted(p for p in self.logdir.rglob("*") if p.is_file()):
                folder = Path(PROFILE_DIR) / path.parent.relative_to(self.logdir)
                self.tracker.log_artifact(path, folder=folder.as_posix())
        log.info("debug=profile: trace of steps %d-%d in %s; open it with: tensorboard "
                 "--logdir %s  (the Profile tab%s)", self.first, min(self.last, self.done),
                 self.logdir, self.logdir, _plugin_note())


def _plugin_note() -> str:
    if importlib.util.find_spec("tensorboard_plugin_profile") is not None:
        return ""
    return " needs pip install tensorboard-plugin-profile, not installed here"
