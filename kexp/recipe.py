"""The recipe of one run: config -> task -> data -> model -> fit -> test -> outputs + MLflow.

`train(cfg)` is the whole of it, readable top to bottom; the CLI (`python -m kexp`),
the tuner and notebooks all call it. `prepare(cfg)` is where every run and every tuning
trial starts; `evaluate(folder)` tests a finished run again (`python -m kexp.eval`).
Importing this module imports TensorFlow.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf
from omegaconf import DictConfig, OmegaConf

from kexp import data as datasets
from kexp import run_dir
from kexp.config import allowed_targets, check_complete, validate
from kexp.data import DataBundle, DataSpec
from kexp.data.augment import with_augmentation
from kexp.errors import KexpError, TrainingFailed
from kexp.models import count_flops
from kexp.run_record import RunRecord
from kexp.tasks import Task, make_task
from kexp.tracking.tracker import NullTracker, checked_tracker
from kexp.training import debug, resume, stepping
from kexp.training.callbacks import (
    GracefulInterrupt,
    NonFiniteLossGuard,
    TimeBudget,
    build_callbacks,
    fit_callbacks,
)
from kexp.training.multi_worker import distribute, finish_together
from kexp.training.precision import (
    fresh_session,
    precision_policy,
    seed_everything,
    set_determinism,
)
from kexp.training.schedules import build_schedule
from kexp.training.settings import RunSettings, describe, resolve
from kexp.training.strategy import make_strategy
from kexp.training.throughput import Throughput

log = logging.getLogger("kexp")


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train, evaluate and log the experiment `cfg` describes; returns metrics.json's content."""
    started = time.perf_counter()
    check_complete(cfg)
    validate(cfg)
    debug.for_overfitting(cfg)  # trainer.overfit_loss: regularization, shuffling off
    tracker = checked_tracker(cfg)  # an unreachable store fails the run in seconds, before data
    task = make_task(cfg)
    data, model, settings = prepare(cfg)
    card = model_card(model)
    if settings.chief:
        out = run_dir.output_dir(cfg)
        tracker.run_dir = out  # named in the warning if the store goes away during the run
    else:  # another worker of a multi-worker run: it trains in step, the chief keeps the record
        out, tracker = Path(tempfile.mkdtemp(prefix="kexp-worker-")), NullTracker()

    saved = resume.previous(out)  # a killed run in this directory: continue it
    record = RunRecord(cfg, out, tracker)
    record.start(data.spec, settings, card)
    status, backup = "FAILED", None
    try:
        backup = resume.prepare(model, cfg, out, saved, tracker)
        guard, interrupt = NonFiniteLossGuard(), GracefulInterrupt()
        budget = TimeBudget(cfg.trainer.get("max_minutes"))
        throughput = Throughput(data.spec.num_train, started=started)
        history = stepping.fit(
            model, data.train, auto=settings.auto_steps,
            validation_data=data.val, epochs=cfg.trainer.epochs,
            initial_epoch=saved.epoch if saved else 0,
            callbacks=fit_callbacks(
                data.epoch, guard, tracker.callback(),
                first=[interrupt, throughput, *debug.callbacks(cfg.trainer, out, tracker),
                       *task.callbacks(model, data, out, tracker, saved.history if saved else {})],
                between=[budget, *build_callbacks(cfg.callbacks, out, backup,
                                                  resumed=saved is not None)]),
            verbose=cfg.trainer.verbose).history
        if settings.auto_steps and saved is None:
            record.chosen_steps_per_execution(model.steps_per_execution)
        if backup is not None:  # every complete epoch, those before a resume too
            history = backup.history
            started -= backup.seconds_before
        if interrupt.interrupted:
            raise KeyboardInterrupt
        if guard.failure:
            raise TrainingFailed(guard.failure)
        keep_best_model(task.exported(model), cfg.callbacks, out)
        test = model.evaluate(data.test, verbose=0, return_dict=True)

        # the task's closer look: the chief only, and not over a multi-worker run's distributed
        # test split (predicting it takes every worker; the others have gone on to
        # finish_together)
        analyzable = settings.chief and isinstance(data.test, tf.data.Dataset)
        pictures, found, scores = task.evaluate(model, data, out) if analyzable else ([], {}, {})
        metrics = {**task.summarize(history, test), **found,
                   "wall_seconds": round(time.perf_counter() - started, 2), **card,
                   "examples_per_second": round(throughput.per_second, 1),
                   # a language model's examples are windows of data.context tokens
                   **({"tokens_per_second": round(throughput.per_second *
                                                  data.spec.tokens_per_example, 1)}
                      if data.spec.token_unit else {}),
                   "seconds_to_first_step": round(throughput.first_step_seconds or 0.0, 2),
                   "stopped_on_time": budget.stopped_on_time,
                   **debug.overfit_verdict(history, cfg.trainer)}
        record.results(task.exported(model), history, metrics, scores, pictures, data.vocabulary,
                       task.CURVE_METRIC)
        finish_together(model)  # multi-worker: the others wait while the chief writes
        if backup is not None:
            backup.discard()
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        if backup is not None:
            log.warning("interrupted; to go on from the last complete epoch: "
                        "python -m kexp resume=%s", out)
        raise
    finally:
        tracker.finish(status)
        if not settings.chief:
            shutil.rmtree(out, ignore_errors=True)
    log.info("%s  (%d epochs, %.1f s) -> %s", task.headline(metrics), metrics["epochs"],
             metrics["wall_seconds"], out if settings.chief else "the chief's run directory")
    return metrics


def evaluate(folder: str | Path, batch_size: int | None = None, unsafe_load: bool = False
             ) -> dict[str, float]:
    """A finished run evaluated again (`python -m kexp.eval`): its config.yaml rebuilds the
    test split and the task, its model.keras is loaded and compiled with the task's loss and
    metrics; returns the test metrics as the run reported them and the test split's size.

    The model is loaded in Keras' safe mode unless `unsafe_load`: a model.keras is a file
    anyone could have handed over, and a Lambda layer in it would run its code on load."""
    import json

    from kexp.models import load_model

    folder = run_dir.finished_run(folder)
    cfg = OmegaConf.load(folder / run_dir.CONFIG_FILE)
    task = make_task(cfg)
    # the model first: a refused file is reported before the data are read
    model = load_model(folder / run_dir.MODEL_FILE, safe_mode=not unsafe_load,
                       compile=False)
    data = datasets.load(task.data_config(cfg.data),
                         global_batch_size=batch_size or cfg.trainer.batch_size,
                         seed=cfg.trainer.seed)
    task.check_data(data.spec, cfg.data.name)
    metrics = {**task.retest(model, data), "num_test": data.spec.num_test}
    (folder / "eval_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def prepare(cfg: DictConfig, load_data: Callable[..., DataBundle] = datasets.load
            ) -> tuple[DataBundle, keras.Model, RunSettings]:
    """Seeds, the strategy, the data and the compiled model: where every run and every tuning
    trial starts. `load_data` is `kexp.data.load` or a caching stand-in with its signature."""
    fresh_session()  # frees the models of earlier runs in this process (-m, trials)
    seed_everything(cfg.trainer.seed)
    set_determinism(cfg.trainer.get("deterministic", False))
    task = make_task(cfg)
    task.check_model(cfg.model, allowed_targets(cfg))  # before the data load
    strategy = make_strategy(cfg.strategy)
    settings = resolve(cfg, strategy)
    data = load_data(task.data_config(cfg.data), global_batch_size=settings.global_batch_size,
                     seed=cfg.trainer.seed)
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        data = dataclasses.replace(data, **{split: distribute(getattr(data, split), strategy)
                                            for split in ("train", "val", "test")})
    task.check_data(data.spec, cfg.data.name)
    task.setup(data)
    seed_everything(cfg.trainer.seed)  # the model starts the same whatever setup drew
    steps_per_epoch = max(1, math.ceil(data.spec.num_train / settings.global_batch_size))

    with precision_policy(cfg.trainer.precision), strategy.scope():
        model = task.build_model(cfg.model, data.spec, allow_targets=allowed_targets(cfg))
        model = with_augmentation(model, cfg.data, cfg.trainer.seed)
        compile_model(model, task, data.spec, cfg, settings, steps_per_epoch)
    if settings.jit_compile and not model.jit_compile:  # a layer XLA cannot compile
        settings = dataclasses.replace(settings, jit_compile=False)
    log.info(describe(strategy, settings))
    return data, model, settings


def compile_model(model: keras.Model, task: Task, spec: DataSpec, cfg: DictConfig,
                  settings: RunSettings, steps_per_epoch: int) -> None:
    """Optimizer and schedule, the task's loss and metrics, with XLA and steps_per_execution
    set explicitly."""
    if cfg.callbacks.reduce_lr.enabled and cfg.schedule.name != "constant":
        raise KexpError(f"callbacks.reduce_lr needs schedule=constant (schedule="
                        f"{cfg.schedule.name} already sets the learning rate every step)")

    def schedule(base_lr: float | None) -> Any:
        return build_schedule(cfg.schedule, settings.learning_rate if base_lr is None
                              else float(base_lr), steps_per_epoch, cfg.trainer.epochs)

    model.compile(**task.optimizers(cfg.optimizer, schedule), **task.compile_args(spec),
                  jit_compile=settings.jit_compile,
                  steps_per_execution=settings.steps_per_execution or 1)


def keep_best_model(model: keras.Model, callbacks_cfg: DictConfig, out: Path) -> None:
    """Leave model.keras holding the weights the test split is evaluated with."""
    path = out / run_dir.MODEL_FILE
    if callbacks_cfg.checkpoint.enabled and path.exists():
        model.load_weights(path)
    else:
        model.save(path)


def model_card(model: keras.Model) -> dict[str, int]:
    """What a model costs: its weights (all, and trainable) and forward FLOPs for one example
    (a GAN: the weights of both networks, the FLOPs of generating one image)."""
    networks = [model.generator, model.discriminator] if hasattr(model, "generator") \
        else [model]
    return {"params": sum(int(n.count_params()) for n in networks),
            "trainable_params": sum(math.prod(w.shape) for n in networks
                                    for w in n.trainable_weights),
            "flops": count_flops(networks[0])}
