"""keras-tuner glue: every trial is an ordinary kexp training run, logged as a nested MLflow run.

`TrialRunner` is the keras-tuner HyperModel: `build(hp)` composes the trial's training config
from the search space's values (as the same command-line overrides would) and builds data and
model with `kexp.train.prepare`; `fit` trains on the training split, is judged on the validation
split, and logs itself as a child run of the search's parent run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras_tuner as kt
from omegaconf import DictConfig, OmegaConf

from kexp import data as datasets
from kexp.config import validate
from kexp.errors import TrainingFailed
from kexp.tracking import make_tracker
from kexp.tracking.tracker import run_tags
from kexp.train import model_card, prepare
from kexp.training.callbacks import LearningRateLogger, NonFiniteLossGuard
from kexp.tuning.space import Param, overrides, searched

log = logging.getLogger("kexp")


@dataclass
class TrialRecord:
    """What the summary table shows of a trial that ran in this process."""

    values: dict[str, Any]
    run_id: str | None = None
    seconds: float = 0.0
    epochs: int = 0


@dataclass
class TrialRunner(kt.HyperModel):
    params: Sequence[Param]
    compose: Callable[[list[str]], DictConfig]  # overrides -> the trial's training config
    log_dir: Path
    records: dict[str, TrialRecord] = field(default_factory=dict)
    trial: Any = None  # set by the tuner before each trial (keras-tuner does not pass it)
    _cfg: DictConfig | None = None
    _data: Any = None
    _data_key: str | None = None

    def __post_init__(self) -> None:
        kt.HyperModel.__init__(self, name="kexp")

    def trial_config(self, values: dict[str, Any]) -> DictConfig:
        cfg = self.compose(overrides(values))
        validate(cfg)
        return cfg

    def build(self, hp: kt.HyperParameters):
        values = {p.key: p.declare(hp) for p in self.params}
        self._cfg = self.trial_config(values)
        _, model = prepare(self._cfg, load_data=self._load)
        return model

    def _load(self, data_cfg: DictConfig, global_batch_size: int, seed: int | None):
        """kexp.data.load, reused across trials while the data settings stay the same."""
        key = OmegaConf.to_yaml(data_cfg, resolve=True) + f"{global_batch_size}/{seed}"
        if key != self._data_key:
            self._data = datasets.load(data_cfg, global_batch_size=global_batch_size, seed=seed)
            self._data_key = key
        return self._data

    def fit(self, hp: kt.HyperParameters, model, *args, callbacks=(), epochs=None,
            initial_epoch: int = 0, **kwargs):
        cfg, trial = self._cfg, self.trial
        values = searched(hp.values)
        tags = {**run_tags(cfg.model.name, cfg.data.name, cfg.tags), "kexp.trial_id":
                trial.trial_id}
        parent_trial = hp.values.get("tuner/trial_id")  # Hyperband: continues this trial
        if parent_trial in self.records and self.records[parent_trial].run_id:
            tags["kexp.promoted_from"] = self.records[parent_trial].run_id
        tracker = make_tracker(cfg.logger, self.log_dir)
        tracker.start(run_name=f"trial-{trial.trial_id}",
                      params=OmegaConf.to_container(cfg, resolve=True), tags=tags)
        tracker.log_metrics(model_card(model))
        record = self.records.setdefault(trial.trial_id, TrialRecord(values))
        record.run_id = tracker.run_id
        started, status = time.perf_counter(), "FAILED"
        try:
            guard = NonFiniteLossGuard()
            history = model.fit(
                self._data.train, validation_data=self._data.val,
                epochs=epochs or cfg.trainer.epochs, initial_epoch=initial_epoch,
                callbacks=[*callbacks, LearningRateLogger(), guard, tracker.callback()],
                verbose=cfg.trainer.verbose, shuffle=False)  # the pipeline shuffles
            if guard.failure:
                raise TrainingFailed(guard.failure)
            record.epochs += len(history.history.get("loss", []))
            status = "FINISHED"
            return history
        except KeyboardInterrupt:
            status = "KILLED"
            raise
        finally:
            record.seconds += time.perf_counter() - started
            tracker.finish(status)
