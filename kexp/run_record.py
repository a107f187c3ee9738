"""What a run leaves behind, in its directory and in its tracker, written by one object: the
recipe hands a `RunRecord` its results and the record writes each file once and logs it.

The directory keeps everything (`kexp.run_dir` names the files); the tracker gets the same
files, the params, tags and final metrics. A record never decides anything about training.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from kexp import provenance, run_dir
from kexp.tracking.tracker import Tracker, final_metrics, run_identity

if TYPE_CHECKING:
    import keras

    from kexp.data import DataSpec
    from kexp.training.settings import RunSettings


class RunRecord:
    """The files and the tracked run of one run directory `out`."""

    def __init__(self, cfg: DictConfig, out: Path, tracker: Tracker) -> None:
        self.cfg, self.out, self.tracker = cfg, out, tracker

    def start(self, spec: DataSpec, settings: RunSettings, card: dict[str, int]) -> None:
        """What a run records before it trains: config.yaml (so resume=<run_dir> finds it
        after a kill), provenance.json, and the MLflow run (reopened when the directory names
        one) with params, tags, the config and the run card (logged first: even a failed run
        compares by cost)."""
        cfg, out, tracker = self.cfg, self.out, self.tracker
        run_dir.write_config(cfg, out)
        name, tags = run_identity(cfg)
        facts = provenance.record(spec, tags.get("git_commit"))
        provenance.write(facts, out)
        run_id = run_dir.read_run_id(out)  # set: the MLflow run of a killed process goes on
        tracker.start(run_name=name,
                      params={} if run_id else {**OmegaConf.to_container(cfg, resolve=True),
                                                "resolved": resolved(settings)},
                      tags={**tags, **provenance.tags(facts)}, resume=run_id)
        run_dir.write_run_id(tracker.run_id, out)
        tracker.log_artifact(out / run_dir.CONFIG_FILE)  # now: `from_run=` can repeat a failed run
        tracker.log_metrics(card)

    def chosen_steps_per_execution(self, steps: int) -> None:
        """What `trainer.steps_per_execution=auto` chose after the first epoch."""
        self.tracker.log_params({"resolved": {"steps_per_execution": steps}})

    def results(self, model: keras.Model, history: dict[str, list[float]],
                metrics: dict[str, Any], scores: dict[str, float], pictures: list[Path],
                vocabulary: list[str] | None, curve_metric: str | None) -> None:
        """A finished run: the final metrics (metrics.json's test_* and best_*, plus the
        task's MLflow-only `scores`), the files (config, metrics, provenance, model summary,
        learning curves, history, the task's `pictures`, a text run's vocabulary) and the
        model."""
        cfg, out, tracker = self.cfg, self.out, self.tracker
        tracker.log_metrics({**final_metrics(metrics), **scores})
        files = [run_dir.write_config(cfg, out), run_dir.write_metrics(metrics, out),
                 out / provenance.PROVENANCE_FILE, run_dir.write_summary(model, out),
                 run_dir.plot_learning_curves(history, out, curve_metric),
                 out / cfg.callbacks.csv_logger.filename, *pictures]
        if vocabulary is not None:  # text: the words behind the token ids the model reads
            from kexp.data.text import save_vocabulary

            files.append(save_vocabulary(vocabulary, out / run_dir.VOCABULARY_FILE))
        for path in files:
            tracker.log_artifact(path)
        tracker.log_model(model)


def resolved(settings: RunSettings) -> dict[str, Any]:
    """The settings a run logs at its start: those not yet known (None) are logged when they
    are."""
    return {k: v for k, v in dataclasses.asdict(settings).items() if v is not None}
