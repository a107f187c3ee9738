"""keras-tuner glue: every trial is an ordinary kexp training run, logged as a nested MLflow run.

`TrialRunner` is the keras-tuner HyperModel: `build(hp)` composes the trial's training config
from the search space's values (as the same command-line overrides would) and builds data and
model with `kexp.recipe.prepare`; `fit` trains on the training split, is judged on the validation
split, and logs itself as a child run of the search's parent run.

What a trial leaves behind is kept in the tuner's project directory, shared by every process of
a search: the parent run's id (so a worker of a distributed search, or a resumed search, links
its child runs to it) and a small record per trial (its run id, epochs and seconds) that the
summary reads, whichever process ran the trial.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import keras_tuner as kt
from omegaconf import DictConfig, OmegaConf

from kexp import data as datasets
from kexp.config import groups, validate
from kexp.errors import TrainingFailed
from kexp.recipe import model_card, prepare
from kexp.tasks import make_task
from kexp.tracking import make_tracker
from kexp.tracking.params import flatten
from kexp.tracking.tracker import run_identity
from kexp.training import stepping
from kexp.training.callbacks import NonFiniteLossGuard, fit_callbacks
from kexp.tuning.space import Param, group_choices, overrides, searched

log = logging.getLogger("kexp")

PARENT_RUN_FILE = "mlflow_parent_run.txt"  # in the project dir: the search's MLflow run
RECORDS_DIR = "kexp_trials"  # in the project dir: <trial id>.json, a TrialRecord each


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
    project_dir: Path | None = None  # the tuner's; set once the tuner exists
    tuner_id: str = "tuner0"  # keras-tuner's id of this process (a worker's name when distributed)
    records: dict[str, TrialRecord] = field(default_factory=dict)  # trials run by this process
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

    def record(self, trial_id: str) -> TrialRecord | None:
        """The record of a trial run by this process or, from the project dir, by any other."""
        if trial_id in self.records:
            return self.records[trial_id]
        path = self._records_dir() / f"{trial_id}.json"
        return TrialRecord(**json.loads(path.read_text())) if path.exists() else None

    def parent_run(self) -> str | None:
        """The MLflow run of the search, as the chief (or the single process) wrote it."""
        path = Path(self.project_dir or ".") / PARENT_RUN_FILE
        if self.project_dir is None or not path.exists():
            return None
        return path.read_text().strip() or None

    def _records_dir(self) -> Path:
        return Path(self.project_dir or ".") / RECORDS_DIR

    def _save(self, trial_id: str, record: TrialRecord) -> None:
        if self.project_dir is not None:
            self._records_dir().mkdir(exist_ok=True)
            (self._records_dir() / f"{trial_id}.json").write_text(json.dumps(asdict(record)))

    def build(self, hp: kt.HyperParameters):
        values = {p.key: p.declare(hp) for p in self.params}
        self._cfg = self.trial_config(values)
        _, model, settings = prepare(self._cfg, load_data=self._load)
        self._auto_steps = settings.auto_steps
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
        name, tags = run_identity(cfg, "trial", trial.trial_id)
        tags["kexp.tuner_id"] = self.tuner_id
        parent_run = self.parent_run()
        if parent_run:  # set by MLflow itself too when the parent is active in this process
            tags["mlflow.parentRunId"] = parent_run
        promoted = self.record(hp.values.get("tuner/trial_id", ""))  # Hyperband's parent trial
        if promoted and promoted.run_id:
            tags["kexp.promoted_from"] = promoted.run_id
        tracker = make_tracker(cfg.logger, self.log_dir)
        params = {**flatten(OmegaConf.to_container(cfg, resolve=True)),
                  **group_choices(values, groups())}
        tracker.start(run_name=name, params=params, tags=tags)
        tracker.log_metrics(model_card(model))
        record = self.records.setdefault(trial.trial_id,
                                         self.record(trial.trial_id) or TrialRecord(values))
        record.run_id = tracker.run_id
        started, status = time.perf_counter(), "FAILED"
        try:
            guard = NonFiniteLossGuard()
            history = stepping.fit(
                model, self._data.train, auto=self._auto_steps,
                validation_data=self._data.val,
                epochs=epochs or cfg.trainer.epochs, initial_epoch=initial_epoch,
                callbacks=fit_callbacks(
                    self._data.epoch, guard, tracker.callback(),
                    first=make_task(cfg).callbacks(model, self._data, None, tracker),
                    between=callbacks),
                verbose=cfg.trainer.verbose)
            if guard.failure:
                raise TrainingFailed(guard.failure)
            record.epochs += len(next(iter(history.history.values()), []))
            status = "FINISHED"
            return history
        except KeyboardInterrupt:
            status = "KILLED"
            raise
        finally:
            record.seconds += time.perf_counter() - started
            self._save(trial.trial_id, record)
            tracker.finish(status)
