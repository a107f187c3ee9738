"""`python -m kexp.tasks.gan.bench`: kexp's DCGAN training speed against a hand-written Keras
DCGAN, and what kexp's per-epoch judging of the samples costs on top.

Two ways to train the same DCGAN (`kexp.models.dcgan.dcgan`, one generator and one
discriminator built from the same config) on the same examples, timed in one process and
interleaved over repeats:

    keras  hand-written, the keras-io pattern (keras.io/examples/generative/
           dcgan_overriding_train_step): a `keras.Model` subclass with
           `compile(d_optimizer, g_optimizer, loss_fn)` and a `train_step` that trains the
           discriminator on real + fake images, then the generator; BinaryCrossentropy
           (from_logits=True), tf.data from_tensor_slices/cache/shuffle/batch/prefetch
    kexp   `kexp.recipe.train(cfg)`, cfg composed as `python -m kexp task=gan model=dcgan
           data=npz data.path=<file> logger=none ...` composes it

Both are timed by kexp's Throughput callback (kexp/training/throughput.py): per epoch from
`on_epoch_begin` to the validation pass Keras starts inside the epoch (`on_test_begin`), or to
`on_epoch_end` without one (the hand-written loop has none; Throughput is its first callback,
so its clock stops before any other epoch-end hook runs); the first epoch (tracing) excluded,
the median of the others. So kexp's epoch-end work (the validation pass, QualityMonitor's
sample scoring, the fixed-noise grid, the checkpoint, the backup, the CSV log) is outside the
training clock; the benchmark times it separately (wrapping those callbacks in this process
only) and reports it per epoch, with the wall time of whole epochs, so the full cost shows.

    python -m kexp.tasks.gan.bench [--quick] [--repeats R] [--out PATH]

The images are uniform noise with random labels: kexp's reference classifier, trained on them
in the first kexp run of the process, then calls every sample one class, and kexp warns of a
mode collapse. That is expected here and changes nothing that is timed.

Results: docs/benchmarks.md, "GAN (task=gan)".
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import functools
import gc
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SIDES = ("keras", "kexp")
LABELS = {"keras": "hand-written Keras (keras-io DCGAN)", "kexp": "kexp task=gan model=dcgan"}
BATCH_SIZE = 64  # kexp's default trainer.batch_size; the hand-written loop uses the same
IMAGE_SHAPE = (28, 28, 1)
LR, BETA_1 = 2e-4, 0.5  # conf/optimizer/gan/adam.yaml, the DCGAN paper's; checked against cfg


@dataclass(frozen=True)
class Mode:
    steps: int  # training steps per epoch: BATCH_SIZE x steps examples after kexp's hold-out
    epochs: int
    repeats: int
    overrides: tuple[str, ...] = ()  # model knobs (both sides) and task knobs (kexp)

    @property
    def train_examples(self) -> int:
        return self.steps * BATCH_SIZE


# full: 2-5 s per timed epoch on 2 CPU cores (0.2-0.5 s a step), 3-5 minutes in all, most of
# it kexp's epoch-end scoring (4-8 s an epoch) and end-of-run evaluation; the DCGAN at its
# defaults (filters 64: 7 -> 14 -> 28), QualityMonitor at its default 5,000 samples
FULL = Mode(steps=10, epochs=4, repeats=3)
# CI: tiny, to show the benchmark runs and writes its JSON (the numbers mean nothing)
QUICK = Mode(steps=2, epochs=2, repeats=1,
             overrides=("model.filters=16", "task.num_samples=500", "task.reference_epochs=1"))
MODES = {"full": FULL, "quick": QUICK}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m kexp.tasks.gan.bench", description="Training images/s of a "
        "hand-written keras-io DCGAN and of kexp's task=gan model=dcgan on generated 28x28x1 "
        "images, and kexp's per-epoch evaluation cost: prints a markdown table, writes JSON.")
    parser.add_argument("--quick", action="store_true",
                        help="CI mode: tiny model, 2 steps x 2 epochs, 1 repeat, 500 samples "
                        "per evaluation (the numbers mean nothing)")
    parser.add_argument("--repeats", type=int, help=f"interleaved repeats (default "
                        f"{FULL.repeats}; quick: {QUICK.repeats})")
    parser.add_argument("--out", type=Path, help="the JSON (default: $KEXP_LOG_DIR/bench/"
                        "gan_bench.json, else logs/bench/gan_bench.json)")
    args = parser.parse_args(argv)
    if args.repeats is not None and args.repeats < 1:
        parser.error("--repeats must be at least 1")
    args.out = args.out or (Path(os.environ.get("KEXP_LOG_DIR") or "logs") / "bench"
                            / "gan_bench.json")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    name = "quick" if args.quick else "full"
    mode = MODES[name]
    repeats = args.repeats or mode.repeats
    from kexp.environment import import_tensorflow_quietly

    import_tensorflow_quietly()
    from kexp.bench import machine, publish, versions

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="kexp-gan-bench-") as tmp:
        cfg, images = prepare(mode, Path(tmp))
        runs = run_sides(cfg, images, mode, repeats)
    result = {"mode": name, "date": datetime.datetime.now().isoformat(timespec="seconds"),
              "command": " ".join(["python -m kexp.tasks.gan.bench",
                                   *(sys.argv[1:] if argv is None else argv)]),
              "machine": machine(), "versions": versions(),
              **summarize(cfg, mode, repeats, runs)}
    result["total_seconds"] = round(time.perf_counter() - started, 1)
    return publish(result, format_table(result), args.out)


# ---------------------------------------------------------------------------- the data and cfg


def bench_case(quick: bool, tmp: Path, log_dir: Path, extra: list[str]
               ) -> tuple[Any, Callable[[str], dict[str, Any]]]:
    """`make bench`'s GAN case (kexp/bench_cases.py): the DCGAN on generated images, kexp
    logging to MLflow in `log_dir` as its defaults do, `extra` overrides on top; returns the
    config and a run of either side."""
    mode = MODES["quick" if quick else "full"]
    cfg, images = prepare(mode, tmp, log_dir, ["logger=mlflow", *extra])
    return cfg, lambda side: run_once(side, cfg, images, mode.epochs)


def kexp_overrides(mode: Mode, data: Path, log_dir: Path,
                   extra: tuple[str, ...] | list[str] = ("logger=none",)) -> list[str]:
    """What a user types after `python -m kexp`; everything else stays at kexp's defaults
    (without MLflow unless `extra` says so: the benchmark's own runs leave nothing behind)."""
    return ["task=gan", "model=dcgan", *mode.overrides, "data=npz", f"data.path={data}",
            f"trainer.epochs={mode.epochs}", "trainer.verbose=0", f"paths.log_dir={log_dir}",
            *extra]


def prepare(mode: Mode, tmp: Path, log_dir: Path | None = None,
            extra: tuple[str, ...] | list[str] = ("logger=none",)) -> tuple[Any, Any]:
    """The generated npz kexp reads, the composed config, and the images the hand-written loop
    trains on: the very examples kexp keeps after holding out data.val_fraction, scaled as
    kexp's train_step scales them (uint8 / 255 * 2 - 1, the generator's [-1, 1])."""
    from kexp.bench_cases import Case, compose, image_data

    cfg = compose(kexp_overrides(mode, tmp / "data.npz", log_dir or tmp / "logs", extra))
    assert (float(cfg.optimizer.lr), float(cfg.optimizer.beta_1)) == (LR, BETA_1), cfg.optimizer
    assert int(cfg.trainer.batch_size) == BATCH_SIZE, cfg.trainer.batch_size
    # make bench's own generated images, the same npz and split as its image cases
    x, _ = image_data(Case("image", "dcgan", IMAGE_SHAPE, mode.steps), cfg, tmp)["train"]
    return cfg, x * 2.0 - 1.0


# ---------------------------------------------------------------------------- the hand-written GAN


@functools.cache
def handwritten_gan() -> type:
    """The keras-io DCGAN model class, as written there. The one change: `training=True` on
    every network call, because this generator has batch normalization (keras-io's networks
    have none, and Keras 3 runs a call inside `train_step` that does not say `training` in
    inference mode)."""
    import keras
    import tensorflow as tf
    from keras import ops

    class GAN(keras.Model):
        def __init__(self, discriminator, generator, latent_dim):
            super().__init__()
            self.discriminator = discriminator
            self.generator = generator
            self.latent_dim = latent_dim
            self.seed_generator = keras.random.SeedGenerator(1337)

        def compile(self, d_optimizer, g_optimizer, loss_fn):
            super().compile()
            self.d_optimizer = d_optimizer
            self.g_optimizer = g_optimizer
            self.loss_fn = loss_fn
            self.d_loss_metric = keras.metrics.Mean(name="d_loss")
            self.g_loss_metric = keras.metrics.Mean(name="g_loss")

        @property
        def metrics(self):
            return [self.d_loss_metric, self.g_loss_metric]

        def train_step(self, real_images):
            # Sample random points in the latent space
            batch_size = ops.shape(real_images)[0]
            random_latent_vectors = keras.random.normal(
                shape=(batch_size, self.latent_dim), seed=self.seed_generator)
            # Decode them to fake images
            generated_images = self.generator(random_latent_vectors, training=True)
            # Combine them with real images
            combined_images = ops.concatenate([generated_images, real_images], axis=0)
            # Assemble labels discriminating real from fake images
            labels = ops.concatenate(
                [ops.ones((batch_size, 1)), ops.zeros((batch_size, 1))], axis=0)
            # Add random noise to the labels - important trick!
            labels += 0.05 * tf.random.uniform(tf.shape(labels))
            # Train the discriminator
            with tf.GradientTape() as tape:
                predictions = self.discriminator(combined_images, training=True)
                d_loss = self.loss_fn(labels, predictions)
            grads = tape.gradient(d_loss, self.discriminator.trainable_weights)
            self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_weights,
                                                 strict=True))
            # Sample random points in the latent space
            random_latent_vectors = keras.random.normal(
                shape=(batch_size, self.latent_dim), seed=self.seed_generator)
            # Assemble labels that say "all real images"
            misleading_labels = ops.zeros((batch_size, 1))
            # Train the generator (note that we should *not* update the weights
            # of the discriminator)!
            with tf.GradientTape() as tape:
                predictions = self.discriminator(
                    self.generator(random_latent_vectors, training=True), training=True)
                g_loss = self.loss_fn(misleading_labels, predictions)
            grads = tape.gradient(g_loss, self.generator.trainable_weights)
            self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_weights,
                                                 strict=True))
            # Update metrics
            self.d_loss_metric.update_state(d_loss)
            self.g_loss_metric.update_state(g_loss)
            return {"d_loss": self.d_loss_metric.result(),
                    "g_loss": self.g_loss_metric.result()}

    return GAN


def fit_by_hand(cfg: Any, images: Any, epochs: int, clock: Any) -> dict[str, float]:
    """What a user writes: the same generator and discriminator (kexp's builder, the same
    knobs), Adam(2e-4, beta_1=0.5) for each, batch 64, the same epochs and examples."""
    import keras
    import tensorflow as tf
    from omegaconf import OmegaConf

    from kexp.models.dcgan import dcgan
    from kexp.training.throughput import Throughput

    started = time.perf_counter()
    knobs = {k: v for k, v in OmegaConf.to_container(cfg.model, resolve=True).items()
             if k not in ("_target_", "name")}
    pair = dcgan(IMAGE_SHAPE, **knobs)
    gan = handwritten_gan()(discriminator=pair.discriminator, generator=pair.generator,
                            latent_dim=int(knobs["latent_dim"]))
    gan.compile(d_optimizer=keras.optimizers.Adam(learning_rate=LR, beta_1=BETA_1),
                g_optimizer=keras.optimizers.Adam(learning_rate=LR, beta_1=BETA_1),
                loss_fn=keras.losses.BinaryCrossentropy(from_logits=True))
    dataset = (tf.data.Dataset.from_tensor_slices(images).cache().shuffle(len(images))
               .batch(BATCH_SIZE).prefetch(tf.data.AUTOTUNE))
    throughput = Throughput(len(images), started=started)
    # shuffle=False: the dataset shuffles (Keras would only warn that it ignores shuffle=True)
    gan.fit(dataset, epochs=epochs, callbacks=[throughput, clock], verbose=0, shuffle=False)
    return {"images_per_second": round(throughput.per_second, 1),
            "first_step_seconds": round(throughput.first_step_seconds or 0.0, 2)}


# ---------------------------------------------------------------------------- timing the epochs


class EpochClock:
    """Whole epochs (from `on_epoch_begin` to the next one, or to `on_train_end`: every
    epoch-end hook included), their training part (to the validation pass, or to this
    callback's `on_epoch_end`), the validation passes inside them, and every training step
    (from its `on_train_batch_begin` to the next step's, the last to the end of the training
    part); made a Keras callback by `epoch_clock()`. Like Throughput it uses begin-of-batch
    hooks only."""

    def __init__(self) -> None:
        self.epochs: list[float] = []
        self.training: list[float] = []
        self.validation: list[float] = []
        self.steps: list[list[float]] = []  # per epoch
        self._epoch: float | None = None
        self._test: float | None = None
        self._begins: list[float] = []

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._close()
        self._epoch, self._begins = time.perf_counter(), []

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        self._begins.append(time.perf_counter())

    def on_test_begin(self, logs: dict | None = None) -> None:
        self._test = time.perf_counter()
        self._end_training(self._test)

    def on_test_end(self, logs: dict | None = None) -> None:
        if self._test is not None:
            self.validation.append(time.perf_counter() - self._test)
            self._test = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self._end_training(time.perf_counter())

    def on_train_end(self, logs: dict | None = None) -> None:
        self._close()

    def _end_training(self, now: float) -> None:
        if self._epoch is not None and len(self.training) < len(self.epochs) + 1:
            self.training.append(now - self._epoch)
            ends = [*self._begins[1:], now]
            self.steps.append([end - begin for begin, end in zip(self._begins, ends,
                                                                 strict=True)])

    def _close(self) -> None:
        if self._epoch is not None:
            self.epochs.append(time.perf_counter() - self._epoch)
            self._epoch = None


def epoch_clock() -> Any:
    import keras

    return type("EpochClock", (EpochClock, keras.callbacks.Callback), {})()


@contextlib.contextmanager
def kexp_timed(parts: dict[str, list[float]], clock: Any) -> Iterator[None]:
    """While inside: every kexp GAN run of this process also carries `clock`, and the time of
    each call of QualityMonitor's and FixedNoiseGrids' hooks lands in `parts`. Restored after."""
    from kexp.tasks.gan.callbacks import FixedNoiseGrids, QualityMonitor
    from kexp.tasks.gan.task import Gan

    # getattr: a hook may be inherited (QualityMonitor's on_epoch_end is PeriodicScores')
    hooks = ((QualityMonitor, "on_train_begin"), (QualityMonitor, "on_epoch_end"),
             (FixedNoiseGrids, "on_epoch_end"), (Gan, "callbacks"))
    saved = {(cls, hook): getattr(cls, hook) for cls, hook in hooks}
    own = {(cls, hook) for cls, hook in hooks if hook in cls.__dict__}

    def timed(original: Any, key: str) -> Any:
        @functools.wraps(original)
        def hook(self: Any, *args: Any, **kwargs: Any) -> Any:
            begun = time.perf_counter()
            try:
                return original(self, *args, **kwargs)
            finally:
                parts.setdefault(key, []).append(time.perf_counter() - begun)
        return hook

    def callbacks(self: Any, *args: Any, **kwargs: Any) -> list[Any]:
        return [clock, *saved[Gan, "callbacks"](self, *args, **kwargs)]

    QualityMonitor.on_train_begin = timed(saved[QualityMonitor, "on_train_begin"],
                                          "quality_monitor_setup")
    QualityMonitor.on_epoch_end = timed(saved[QualityMonitor, "on_epoch_end"],
                                        "quality_monitor")
    FixedNoiseGrids.on_epoch_end = timed(saved[FixedNoiseGrids, "on_epoch_end"], "grids")
    Gan.callbacks = callbacks
    try:
        yield
    finally:
        for (cls, hook), original in saved.items():
            if (cls, hook) in own:
                setattr(cls, hook, original)
            else:
                delattr(cls, hook)


def run_once(side: str, cfg: Any, images: Any, epochs: int) -> dict[str, Any]:
    import keras

    gc.collect()
    clock = epoch_clock()
    if side == "kexp":
        from kexp.recipe import train

        parts: dict[str, list[float]] = {}
        with kexp_timed(parts, clock):
            metrics = train(copy.deepcopy(cfg))  # train() fills in paths.output_dir
        found = {"images_per_second": metrics["examples_per_second"],
                 "first_step_seconds": metrics["seconds_to_first_step"],
                 "flops_per_image": metrics["flops"], "parts": parts}
    else:
        keras.backend.clear_session()  # as kexp's prepare() does
        keras.utils.set_random_seed(cfg.trainer.seed)
        found = fit_by_hand(cfg, images, epochs, clock)
    return {**found, "epoch_seconds": clock.epochs, "training_seconds": clock.training,
            "validation_seconds": clock.validation, "step_seconds": clock.steps}


def run_sides(cfg: Any, images: Any, mode: Mode, repeats: int) -> dict[str, list]:
    """Both sides `repeats` times, interleaved, the order swapped each repeat."""
    runs: dict[str, list] = {side: [] for side in SIDES}
    for r in range(repeats):
        for side in SIDES[r % 2:] + SIDES[:r % 2]:
            started = time.perf_counter()
            runs[side].append(last := run_once(side, cfg, images, mode.epochs))
            print(f"[gan bench] repeat {r + 1}/{repeats} {side:5}: "
                  f"{last['images_per_second']:8.1f} training images/s, first step "
                  f"{last['first_step_seconds']:.2f} s, run {time.perf_counter() - started:.1f} s",
                  flush=True)
    return runs


# ---------------------------------------------------------------------------- the summary


def _median(values: list[float], digits: int = 3) -> float | None:
    """The median of `values`, rounded; None for none."""
    return round(statistics.median(values), digits) if values else None


def _later(values: list[float]) -> list[float]:
    """Per-epoch values after the first (which traces), as Throughput counts; all of one."""
    return values[1:] or values


def epoch_end_parts(run: dict[str, Any]) -> list[dict[str, float]]:
    """Per epoch of a kexp run: the seconds of each part of its epoch-end work."""
    parts, found = run["parts"], []
    for i, whole in enumerate(run["epoch_seconds"]):
        def at(values: list[float], i: int = i) -> float:
            return values[i] if i < len(values) else 0.0
        total = whole - at(run["training_seconds"])
        named = {"validation_pass": at(run["validation_seconds"]),
                 "quality_monitor": at(parts.get("quality_monitor", [])),
                 "fixed_noise_grid": at(parts.get("grids", []))}
        # checkpoint, backup, CSV log, early stopping, Keras' own epoch end
        found.append({**named, "other": max(0.0, total - sum(named.values())), "total": total})
    return found


def step_stats(seconds: list[float]) -> dict[str, Any]:
    """Training steps of the epochs after the first, pooled over repeats: the median step
    and the fastest tenth's bound (p10), as images/s; the latter is the least touched by other
    processes on a shared machine."""
    ordered = sorted(seconds)
    p10 = ordered[int(0.1 * (len(ordered) - 1))]
    return {"count": len(ordered), "median_seconds": round(statistics.median(ordered), 4),
            "p10_seconds": round(p10, 4),
            "median_images_per_second": round(BATCH_SIZE / statistics.median(ordered), 1),
            "p10_images_per_second": round(BATCH_SIZE / p10, 1)}


def summarize(cfg: Any, mode: Mode, repeats: int, runs: dict[str, list]) -> dict[str, Any]:
    from omegaconf import OmegaConf

    ips = {s: round(statistics.median(r["images_per_second"] for r in runs[s]), 1)
           for s in SIDES}
    epoch = {s: _median([v for r in runs[s] for v in _later(r["epoch_seconds"])]) for s in SIDES}
    per_epoch = [e for r in runs["kexp"] for e in _later(epoch_end_parts(r))]
    epoch_end = {key: _median([e[key] for e in per_epoch]) for key in (
        "validation_pass", "quality_monitor", "fixed_noise_grid", "other", "total")}
    epoch_end["quality_monitor_first_epoch"] = _median(
        [r["parts"]["quality_monitor"][0] for r in runs["kexp"] if r["parts"].get(
            "quality_monitor")])
    epoch_end["quality_monitor_setup"] = _median(
        [v for r in runs["kexp"] for v in r["parts"].get("quality_monitor_setup", [])])
    per_repeat = [round(k["images_per_second"] / h["images_per_second"], 3)
                  for k, h in zip(runs["kexp"], runs["keras"], strict=True)]
    steps = {s: step_stats([t for r in runs[s] for e in _later(r["step_seconds"]) for t in e])
             for s in SIDES}
    return {
        "model": "dcgan",
        "model_overrides": [o for o in mode.overrides if o.startswith("model.")],
        "kexp_overrides": kexp_overrides(mode, Path("<tmp>/data.npz"), Path("<tmp>/logs")),
        "model_knobs": {k: v for k, v in OmegaConf.to_container(cfg.model, resolve=True).items()
                        if k != "_target_"},
        "input_shape": IMAGE_SHAPE, "batch_size": BATCH_SIZE,
        "optimizer": {"lr": LR, "beta_1": BETA_1},
        "train_examples": mode.train_examples, "steps_per_epoch": mode.steps,
        "epochs": mode.epochs, "repeats": repeats, "num_samples": int(cfg.task.num_samples),
        "images_per_second": ips, "ratio_kexp_keras": round(ips["kexp"] / ips["keras"], 3),
        "ratios_per_repeat": per_repeat, "goal_ratio": 1.0,
        "goal_met": ips["kexp"] / ips["keras"] >= 1.0,
        "first_step_seconds": {s: _median([r["first_step_seconds"] for r in runs[s]], 2)
                               for s in SIDES},
        "steps": steps,
        "ratio_kexp_keras_per_step": {k: round(steps["kexp"][k] / steps["keras"][k], 3)
                                      for k in ("median_images_per_second",
                                                "p10_images_per_second")},
        "epoch_seconds": epoch,
        "epoch_images_per_second": {s: round(mode.train_examples / epoch[s], 1)
                                    if epoch[s] else None for s in SIDES},
        "kexp_epoch_end_seconds": epoch_end,
        "flops_per_image": runs["kexp"][0]["flops_per_image"],
        "runs": {s: [{k: v for k, v in r.items() if k != "flops_per_image"} for r in runs[s]]
                 for s in SIDES},
    }


def format_table(result: dict[str, Any]) -> str:
    m, v, ips, epoch = (result["machine"], result["versions"], result["images_per_second"],
                        result["epoch_seconds"])
    end, first = result["kexp_epoch_end_seconds"], result["first_step_seconds"]
    knobs = ", ".join(result["model_overrides"]) or "its defaults"
    runs = {s: ", ".join(f"{r['images_per_second']:.1f}" for r in result["runs"][s])
            for s in SIDES}

    def seconds(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.2f}"

    per_repeat, steps = result["ratios_per_repeat"], result["steps"]
    step_ratio = result["ratio_kexp_keras_per_step"]
    lines = [
        f"\n## kexp.tasks.gan.bench ({result['mode']})\n",
        f"DCGAN ({knobs}) on generated {'x'.join(map(str, result['input_shape']))} uint8 "
        f"images, batch {result['batch_size']}, {result['steps_per_epoch']} steps x "
        f"{result['epochs']} epochs, {result['repeats']} interleaved repeat(s); Adam "
        f"{result['optimizer']['lr']:g} beta_1 {result['optimizer']['beta_1']} on both "
        f"networks. Training images/s: kexp's Throughput callback (epoch begin to the "
        f"validation pass / epoch end, first epoch excluded), median over repeats.",
        f"machine: {m['cores']} cores, {m['cpu']}, GPU: {m['gpu'] or 'none'}; python "
        f"{v['python']}, tensorflow {v['tensorflow']}, keras {v['keras']}, kexp {v['kexp']}",
        "",
        "| side | training images/s | runs | per step, median | per step, fastest 10% | "
        "first step s | whole epoch s | whole-epoch images/s |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
        *(f"| {LABELS[s]} | {ips[s]:.1f} | {runs[s]} | "
          f"{steps[s]['median_images_per_second']:.1f} | {steps[s]['p10_images_per_second']:.1f}"
          f" | {first[s]:.2f} | {seconds(epoch[s])} | "
          f"{result['epoch_images_per_second'][s] or 'n/a'} |" for s in SIDES),
        f"| **kexp / hand-written** | **{result['ratio_kexp_keras']:.2f}x** | per repeat "
        f"{min(per_repeat):.2f}-{max(per_repeat):.2f} | "
        f"{step_ratio['median_images_per_second']:.2f}x | "
        f"{step_ratio['p10_images_per_second']:.2f}x | | | |",
        "",
        f"Goal kexp / hand-written >= {result['goal_ratio']:.1f}x (training images/s): "
        f"{'met' if result['goal_met'] else 'NOT met'}. Per step: images/s of the median step "
        f"and of the 10th-percentile step, {steps['kexp']['count']} kexp and "
        f"{steps['keras']['count']} hand-written steps of the timed epochs.",
        "",
        f"kexp's work at each epoch end (outside the training clock; the hand-written loop does "
        f"none), seconds per epoch, median of the epochs after the first, "
        f"task.num_samples={result['num_samples']}:",
        "",
        "| part | s / epoch |",
        "|---|---:|",
        f"| validation pass (GAN test_step on the val split) | {seconds(end['validation_pass'])} |",
        f"| QualityMonitor (sample {result['num_samples']}, reference-CNN features, FD/KID/CS) | "
        f"{seconds(end['quality_monitor'])} |",
        f"| FixedNoiseGrids (10x10 grid PNG) | {seconds(end['fixed_noise_grid'])} |",
        f"| the rest (checkpoint, backup, CSV log, early stopping) | {seconds(end['other'])} |",
        f"| **all epoch-end work** (whole epoch - training) | {seconds(end['total'])} |",
        "",
        f"QualityMonitor's first epoch (traces the generator at batch 500): "
        f"{seconds(end['quality_monitor_first_epoch'])} s; its set-up at train begin (loads the "
        f"reference CNN, features of the val images): {seconds(end['quality_monitor_setup'])} s. "
        f"kexp's first step includes the reference classifier's one-off training in the first "
        f"kexp run of the process.",
        f"total {result['total_seconds']:.0f} s",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
