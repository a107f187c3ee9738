"""The recipe of a search: space -> tuner -> trials (child runs) -> best.yaml + summary.

`tune(cfg, base_overrides)` is what `python -m kexp.tune` runs. The tuner's project directory
(`tuner.directory/tuner.project_name`) is stable, so rerunning the same command resumes the
search: keras-tuner reloads its finished trials and retries the one that was cut off, and the
search's MLflow parent run is reopened rather than started again.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Any

import keras_tuner as kt
from keras_tuner.src import config as kt_config
from omegaconf import DictConfig, OmegaConf, open_dict

from kexp import run_dir
from kexp.config import group_options, groups
from kexp.environment import debug_enabled
from kexp.errors import KexpError, TrainingFailed
from kexp.tracking import make_tracker
from kexp.tracking.params import flatten
from kexp.tracking.tracker import final_metrics, run_identity
from kexp.tuning import distributed, space
from kexp.tuning.plots import plot_trials
from kexp.tuning.trials import PARENT_RUN_FILE, TrialRunner

log = logging.getLogger("kexp")

BEST_FILE = "best.yaml"
SUMMARY_FILE = "trials.csv"


def tune(cfg: DictConfig, base_overrides: list[str]) -> dict[str, Any]:
    """Run (or resume) the search `cfg.tuner` over `cfg.search.space`; returns the summary.

    With `tuner.distributed.role=worker` this process only runs the trials the chief's oracle
    hands out, and returns the ids of those it ran."""
    params = space.parse(cfg.search.space)
    out = run_dir.output_dir(cfg)

    def compose(trial_overrides: list[str]) -> DictConfig:
        trial_cfg = compose_training([*base_overrides, *trial_overrides])
        trial_cfg.paths.output_dir = str(out)
        return trial_cfg

    with distributed.environment(cfg.tuner.distributed) as role:
        space.check_keys(params, compose, groups(), group_options)
        runner = TrialRunner(params, compose, Path(cfg.paths.log_dir))
        tuner = make_tuner(cfg.tuner, runner, worker=role == "worker")
        runner.project_dir, runner.tuner_id = Path(tuner.project_dir), tuner.tuner_id
        if role == "worker":
            return work(tuner, runner, cfg.tuner.distributed.address)
        return lead(cfg, tuner, runner, out)


def lead(cfg: DictConfig, tuner: kt.Tuner, runner: TrialRunner, out: Path) -> dict[str, Any]:
    """The search's MLflow parent run around the search (run here, or served to workers when
    this is the chief), then the summary and, if asked, the best config retrained."""
    parent = make_tracker(cfg.logger, Path(cfg.paths.log_dir))
    saved = runner.project_dir / PARENT_RUN_FILE
    resume = saved.read_text().strip() if saved.exists() and not cfg.tuner.overwrite else None
    name, tags = run_identity(cfg, "search")
    parent.start(run_name=name,
                 params=flatten({"tuner": OmegaConf.to_container(cfg.tuner, resolve=True),
                                 "search": OmegaConf.to_container(cfg.search, resolve=True)}),
                 tags=tags, resume=resume)
    if parent.run_id:
        saved.write_text(parent.run_id + "\n")
    if resume and parent.kill_stale_children():
        log.info("resuming the search: trials cut off last time are marked KILLED in MLflow")
    if cfg.tuner.distributed.role == "chief":
        address = cfg.tuner.distributed.address
        print(f"[kexp.tune] chief: serving the oracle at {address} until the search is over; "
              f"start workers with the same command and tuner.distributed.role=worker "
              f"tuner.distributed.address={address}", flush=True)
    status, stopped = "FAILED", None
    try:
        try:
            tuner.search(verbose=0)
        except RuntimeError as err:  # keras-tuner: too many failed trials in a row
            stopped = str(err).strip().splitlines()[0]
        summary = summarize(tuner, runner, cfg, out)
        parent.log_metrics(summary["metrics"])
        for path in summary["artifacts"]:
            parent.log_artifact(path)
        if cfg.tuner.retrain_best:
            retrained = retrain_best(runner, summary["best_values"], out)
            summary["retrain"] = retrained
            parent.log_metrics({f"retrain_{k}": v for k, v in final_metrics(retrained).items()
                                if k.startswith("test_")})
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        parent.finish(status)
    if stopped:
        log.warning("search stopped early: %s", stopped)
    return summary


def work(tuner: kt.Tuner, runner: TrialRunner, address: str) -> dict[str, Any]:
    """A worker's part of a distributed search: trials from the chief until it says stop."""
    import grpc

    print(f"[kexp.tune] worker {runner.tuner_id}: asking the chief at {address} for trials "
          "(it waits for the chief to start)", flush=True)
    try:
        tuner.search(verbose=0)
    except grpc.RpcError as err:  # the chief went away or failed mid-search
        raise TrainingFailed(f"worker {runner.tuner_id}: the chief at {address} did not answer: "
                             f"{err.code().name}: {err.details()}") from None
    ran = sorted(runner.records, key=int)
    print(f"[kexp.tune] worker {runner.tuner_id}: the chief ended the search; this worker ran "
          f"{len(ran)} trial(s): {', '.join(ran) or 'none'}", flush=True)
    return {"worker": runner.tuner_id, "trials": ran}


def retrain_best(runner: TrialRunner, values: dict[str, Any], out: Path) -> dict[str, Any]:
    """The best trial's config trained again on train+val for all its epochs (no early stop)
    and tested once: an ordinary `kexp.recipe.train` run, nested under the search's run."""
    from kexp.recipe import train

    cfg = runner.trial_config(values)
    with open_dict(cfg):
        cfg.data.train_on_val = True
        cfg.callbacks.early_stopping.enabled = False
        cfg.tags = {**cfg.tags, "kexp.retrain": "best"}
        cfg.run_name = "retrain-best"
    cfg.paths.output_dir = str(out / "retrain_best")
    return train(cfg)


def compose_training(overrides: list[str]) -> DictConfig:
    """The training config `python -m kexp <overrides>` would run."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():  # inside `python -m kexp.tune`
        return compose("train", overrides=overrides)
    with initialize_config_module("kexp.conf", version_base="1.3"):
        return compose("train", overrides=overrides)


TUNERS = {"random": kt.RandomSearch, "bayesian": kt.BayesianOptimization,
          "hyperband": kt.Hyperband, "grid": kt.GridSearch}


def make_tuner(tuner_cfg: DictConfig, runner: TrialRunner, worker: bool = False) -> kt.Tuner:
    """The keras-tuner tuner `tuner.name` names, reporting to `runner` and to the console.

    A worker never overwrites: the project directory is the chief's too."""
    name = tuner_cfg.name
    if name not in TUNERS:
        raise KexpError(f"tuner.name: '{name}' is not one of {', '.join(TUNERS)}")
    options: dict[str, Any] = {
        "objective": kt.Objective(tuner_cfg.objective, direction=tuner_cfg.direction),
        "seed": tuner_cfg.seed, "max_consecutive_failed_trials": tuner_cfg.max_failed_trials,
        "directory": tuner_cfg.directory, "project_name": tuner_cfg.project_name,
        "overwrite": tuner_cfg.overwrite and not worker,
    }
    if name == "hyperband":
        options.update(max_epochs=tuner_cfg.max_epochs, factor=tuner_cfg.factor,
                       hyperband_iterations=tuner_cfg.hyperband_iterations)
    else:
        options["max_trials"] = tuner_cfg.max_trials
    if name == "bayesian":
        options.update(num_initial_points=tuner_cfg.num_initial_points,
                       alpha=tuner_cfg.alpha, beta=tuner_cfg.beta)
    # keras-tuner 1.4.8 prints every failed trial's traceback (its DEBUG flag defaults to on);
    # kexp reports each failure in its one progress line instead, tracebacks with KEXP_DEBUG=1
    kt_config.DEBUG = debug_enabled()
    cls = type(f"Kexp{TUNERS[name].__name__}", (_Reporting, TUNERS[name]), {})
    try:
        return cls(hypermodel=runner, **options)
    except ValueError as err:  # e.g. a grid over a float without a step
        raise KexpError(f"tuner={name}: {str(err).splitlines()[0]}") from None


class _Reporting:
    """Mixed into a keras-tuner tuner: tells the runner which trial runs, prints a line a trial."""

    def on_search_begin(self) -> None:
        self._started = time.perf_counter()
        super().on_search_begin()

    def run_trial(self, trial, *args, **kwargs):
        self.hypermodel.trial = trial
        return super().run_trial(trial, *args, **kwargs)

    def on_trial_end(self, trial) -> None:
        try:
            super().on_trial_end(trial)  # raises when too many trials failed in a row
        finally:
            self._report(trial)

    def _report(self, trial) -> None:
        oracle = self.oracle
        trial = oracle.get_trial(trial.trial_id)  # a worker's copy lacks the chief's score
        done = [t for t in all_trials(oracle) if t.status in ("COMPLETED", "FAILED")]
        total = getattr(oracle, "max_trials", None) or "?"
        best = best_trials(oracle, 1)
        values = ", ".join(f"{k}={_short(v)}" for k, v in _values(trial).items())
        result = (f"{oracle.objective.name}={trial.score:.4f}" if trial.status == "COMPLETED"
                  else f"{trial.status}: {first_error(trial)}")
        best_text = f"{best[0].score:.4f}" if best else "-"
        print(f"[kexp.tune] trial {len(done)}/{total} ({trial.trial_id}) {values} -> {result}; "
              f"best {best_text}; {time.perf_counter() - self._started:.0f} s", flush=True)


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def all_trials(oracle: Any) -> list[Any]:
    """Every trial of the search; on a worker, as the chief's oracle knows them."""
    if hasattr(oracle, "trials"):
        return list(oracle.trials.values())
    return oracle.get_best_trials(2**31 - 1)  # the client has no `trials`: best pads with all


def best_trials(oracle: Any, k: int) -> list[Any]:
    """The k best COMPLETED trials (keras-tuner's own list pads with failed ones)."""
    return [t for t in oracle.get_best_trials(k) if t.status == "COMPLETED"]


def first_error(trial: Any) -> str:
    """The error line of a failed trial's traceback (`SomeError: message`)."""
    lines = [line.strip() for line in (trial.message or "").splitlines() if line.strip()]
    errors = [line for line in lines if _ERROR_LINE.match(line)]
    return (errors or lines or ["no message"])[-1]


_ERROR_LINE = re.compile(r"^[\w.]*(Error|Exception|Failed|Interrupt)\w*: ")


def summarize(tuner: kt.Tuner, runner: TrialRunner, cfg: DictConfig, out: Path
              ) -> dict[str, Any]:
    """best.yaml, trials.csv and the console table; a search with no finished trial raises."""
    oracle = tuner.oracle
    trials = list(oracle.trials.values())
    counts = {status: sum(t.status == status for t in trials)
              for status in ("COMPLETED", "FAILED")}
    best = best_trials(oracle, max(1, cfg.tuner.top_k))
    if not best:
        failed = [t for t in trials if t.status == "FAILED"]
        detail = first_error(failed[0]) if failed else "no trial ran"
        raise TrainingFailed(f"every trial of the search failed; the first: {detail}")
    write_best(runner.trial_config(_values(best[0])), out / BEST_FILE)
    objective = oracle.objective.name
    records = {t.trial_id: runner.record(t.trial_id) for t in trials}
    rows = [(t.trial_id, t.score, records[t.trial_id], _values(t)) for t in best]
    header = ["trial", objective, "epochs", "seconds", *_values(best[0])]
    lines = [",".join(header)]
    for trial_id, score, record, values in rows:
        lines.append(",".join([trial_id, f"{score:.6g}",
                               str(record.epochs) if record else "",
                               f"{record.seconds:.1f}" if record else "",
                               *(_short(v) for v in values.values())]))
    (out / SUMMARY_FILE).write_text("\n".join(lines) + "\n")
    finished = [(_values(t), float(t.score)) for t in trials if t.status == "COMPLETED"]
    figures = plot_trials(runner.params, finished, objective, out)
    print(f"[kexp.tune] best {objective} {best[0].score:.4f} (trial {best[0].trial_id}); "
          f"{counts['COMPLETED']} completed, {counts['FAILED']} failed; top {len(best)}:")
    for line in lines:
        print("  " + line.replace(",", "  "))
    print(f"[kexp.tune] retrain the best: python -m kexp --config-path {out.resolve()} "
          f"--config-name best")
    return {"best_trial": best[0].trial_id, "best_score": float(best[0].score),
            "best_values": _values(best[0]), "output_dir": str(out),
            "artifacts": [out / BEST_FILE, out / SUMMARY_FILE, *figures],
            "metrics": {f"best_{objective}": float(best[0].score),
                        "trials_completed": counts["COMPLETED"],
                        "trials_failed": counts["FAILED"],
                        # by every trial, whichever process (or earlier run) trained it
                        "epochs_trained": sum(r.epochs for r in records.values() if r)}}


def _values(trial: Any) -> dict[str, Any]:
    return space.searched(trial.hyperparameters.values)


def write_best(trial_cfg: DictConfig, path: Path) -> Path:
    """The best trial's training config, resolved, as a primary config `python -m kexp` runs."""
    return run_dir.save_runnable(OmegaConf.to_container(trial_cfg, resolve=True), path)
