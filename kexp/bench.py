"""`make bench` / `python -m kexp.bench`: kexp's training speed against hand-written Keras.

Per case (a model on generated images of a fixed size), three ways to train the same model on
the same examples, timed in one process and interleaved over repeats:

    a  plain Keras: numpy arrays into model.fit, as in the Keras MNIST tutorial
    b  hand-written best practice: tf.data from_tensor_slices, cache, shuffle, batch, prefetch
    c  kexp: kexp.recipe.train(cfg), cfg composed as `python -m kexp model=<m> data=npz ...` is

All three are timed by the Throughput callback of every kexp run (training images/s of each
epoch, validation left out, first epoch excluded, median); the table has the median over repeats
and the ratios c/a and c/b, time to the first training step, `python -m kexp --cfg job`'s wall
time and, on a GPU, the model FLOPs utilization. Results: docs/benchmarks.md.

    python -m kexp.bench [--quick] [--repeats R] [--cases mlp,cnn,...] [--out PATH]
                         [--kexp KEY=VALUE ...]   (an override for c only: "what if" a default)
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

VARIANTS = ("a", "b", "c")
BATCH_SIZE = 64  # kexp's default trainer.batch_size; the baselines use the same
CLASSES, TEST_EXAMPLES, DATA_SEED = 10, 64, 0
CFG_JOB_GOAL_SECONDS = 2.0


@dataclass(frozen=True)
class Case:
    model: str
    input_shape: tuple[int, int, int]
    steps: int  # training steps per epoch: BATCH_SIZE x steps examples after kexp's val hold-out
    overrides: tuple[str, ...] = ()  # model knobs, the same for a, b and c

    @property
    def train_examples(self) -> int:
        return self.steps * BATCH_SIZE


MNIST, CIFAR = (28, 28, 1), (32, 32, 3)
# 0.5-1.3 s per timed epoch on 2 CPU cores, ~9 minutes in all; many short epochs per run, because
# there TensorFlow runs some whole epochs on ~1.2 cores instead of ~1.85 (the median skips those)
FULL = {"mlp": Case("mlp", MNIST, 128), "cnn": Case("cnn", MNIST, 32),
        "resnet20": Case("resnet20", CIFAR, 4), "vgg11": Case("vgg11", CIFAR, 3)}
# CI: every case, tiny, to show the benchmark runs and writes its JSON (the numbers mean nothing)
QUICK = {"mlp": Case("mlp", MNIST, 8, ("model.hidden_units=[32]",)),
         "cnn": Case("cnn", MNIST, 4, ("model.width=0.25",)),
         "resnet20": Case("resnet20", CIFAR, 2, ("model.width=0.25",)),
         "vgg11": Case("vgg11", CIFAR, 2, ("model.width=0.125",))}
MODES = {"full": (FULL, 8, 3), "quick": (QUICK, 2, 1)}  # cases, epochs per run, repeats

# Dense peak TFLOP/s per GPU from NVIDIA's datasheets, matched against the device name in order;
# tf32 is float32 matmuls/convolutions on tensor cores (TensorFlow's default since Ampere); the
# 16-bit peak is the same for bfloat16 and float16 on these. Any other GPU: MFU "unknown peak".
PEAK_TFLOPS = (
    ("H100 SXM", r"H100 80GB HBM3|H100 SXM", {"fp32": 66.9, "tf32": 494.7, "fp16/bf16": 989.4}),
    ("H100 PCIe", r"H100 PCIe", {"fp32": 51.2, "tf32": 378.0, "fp16/bf16": 756.0}),
    ("H200 SXM", r"H200(?! NVL)", {"fp32": 66.9, "tf32": 494.7, "fp16/bf16": 989.4}),
    ("A100", r"A100", {"fp32": 19.5, "tf32": 156.0, "fp16/bf16": 312.0}),
    ("L4", r"\bL4\b", {"fp32": 30.3, "tf32": 60.0, "fp16/bf16": 121.0}),
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m kexp.bench", description="Training images/s of plain Keras (a), tf.data "
        "best practice (b) and kexp (c) on generated data: prints a table, writes JSON.")
    parser.add_argument("--quick", action="store_true",
                        help="CI mode: every case tiny, 1 repeat (the numbers mean nothing)")
    parser.add_argument("--repeats", type=int, help="interleaved repeats (default 3; quick: 1)")
    parser.add_argument("--cases", default=",".join(FULL),
                        help=f"comma-separated, from {','.join(FULL)} (default: all)")
    parser.add_argument("--out", type=Path, help="the JSON (default: $KEXP_LOG_DIR/bench/"
                        "bench.json, else logs/bench/bench.json)")
    parser.add_argument("--kexp", action="append", default=[], metavar="KEY=VALUE",
                        help="an extra override for kexp's run (c) only, to measure what another "
                        "default would give, e.g. --kexp trainer.steps_per_execution=16")
    args = parser.parse_args(argv)
    args.cases = [c for c in args.cases.split(",") if c]
    unknown = [c for c in args.cases if c not in FULL]
    if unknown or not args.cases:
        parser.error(f"--cases: unknown {','.join(unknown) or '(none)'}; from {','.join(FULL)}")
    if args.repeats is not None and args.repeats < 1:
        parser.error("--repeats must be at least 1")
    args.out = args.out or Path(os.environ.get("KEXP_LOG_DIR") or "logs") / "bench" / "bench.json"
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    mode = "quick" if args.quick else "full"
    table, epochs, repeats = MODES[mode]
    from kexp.environment import import_tensorflow_quietly

    import_tensorflow_quietly()
    # kexp's runs log to MLflow's default store (SQLite) in the temporary log_dir, never to a
    # server $MLFLOW_TRACKING_URI may name
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="kexp-bench-") as tmp:
        result = {"mode": mode, "date": datetime.datetime.now().isoformat(timespec="seconds"),
                  "command": " ".join(["python -m kexp.bench", *(argv or sys.argv[1:])]),
                  "batch_size": BATCH_SIZE, "epochs": epochs, "repeats": args.repeats or repeats,
                  "kexp_extra_overrides": args.kexp, "machine": machine(), "versions": versions(),
                  "cases": run_cases({n: table[n] for n in args.cases}, epochs,
                                     args.repeats or repeats, args.kexp, Path(tmp)),
                  "cfg_job_seconds": time_cfg_job(Path(tmp))}
    result["total_seconds"] = round(time.perf_counter() - started, 1)
    return publish(result, format_table(result), args.out)


def publish(result: dict[str, Any], table: str, out: Path) -> dict[str, Any]:
    """Print a benchmark's table and write its result as JSON to `out`; returns `result`."""
    print(table)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written: {out}")
    return result


def run_cases(cases: dict[str, Case], epochs: int, repeats: int, extra: list[str],
              tmp: Path) -> dict[str, Any]:
    """Every case's a, b and c `repeats` times, interleaved, the order rotated per repeat."""
    prepared = {name: prepare_case(name, case, epochs, extra, tmp) for name, case in cases.items()}
    runs: dict[str, dict[str, list]] = {name: {v: [] for v in VARIANTS} for name in cases}
    for r in range(repeats):
        for name, (cfg, arrays) in prepared.items():
            for variant in VARIANTS[r % 3:] + VARIANTS[:r % 3]:
                started = time.perf_counter()
                runs[name][variant].append(last := run_once(variant, cfg, arrays, epochs))
                print(f"[kexp.bench] repeat {r + 1}/{repeats} {name:9} {variant}: "
                      f"{last['images_per_second']:9.1f} images/s, first step "
                      f"{last['first_step_seconds']:.2f} s, run "
                      f"{time.perf_counter() - started:.1f} s", flush=True)
    peak = gpu_peak()
    return {name: summarize(cases[name], prepared[name][0], runs[name], epochs, peak)
            for name in cases}


def prepare_case(name: str, case: Case, epochs: int, extra: list[str], tmp: Path):
    """The generated npz kexp reads, the composed config, and the split the baselines train on:
    the very examples kexp keeps after holding out data.val_fraction for validation."""
    import numpy as np
    from hydra import compose, initialize_config_module

    from kexp.data.sources.split import holdout

    with initialize_config_module("kexp.conf", version_base="1.3"):
        cfg = compose("train", overrides=[*kexp_overrides(case, epochs, tmp / name, tmp / "logs"),
                                          *extra])
    fraction = float(cfg.data.val_fraction)
    total = next(n for n in range(case.train_examples, 2 * case.train_examples + 10)
                 if n - math.ceil(fraction * n) == case.train_examples)  # sklearn's rounding
    rng = np.random.default_rng(DATA_SEED)
    x = rng.integers(0, 256, (total + TEST_EXAMPLES, *case.input_shape), dtype=np.uint8)
    y = rng.permutation(np.arange(total + TEST_EXAMPLES) % CLASSES)  # every class present
    (tmp / name).mkdir(parents=True)
    np.savez(tmp / name / "data.npz", x_train=x[:total], y_train=y[:total],
             x_test=x[total:], y_test=y[total:])
    kept, held = holdout(y[:total], fraction, cfg.trainer.seed, "val_fraction")
    assert len(kept) == case.train_examples, (len(kept), case)
    scaled = x[:total].astype("float32") / 255.0  # as kexp's pipeline scales uint8 images
    return cfg, {"train": (scaled[kept], y[kept]), "val": (scaled[held], y[held])}


def kexp_overrides(case: Case, epochs: int, data_dir: Path, log_dir: Path) -> list[str]:
    """What a user types after `python -m kexp`; everything else stays at kexp's defaults."""
    return [f"model={case.model}", *case.overrides, "data=npz",
            f"data.path={data_dir / 'data.npz'}", f"trainer.epochs={epochs}",
            "trainer.verbose=0", f"paths.log_dir={log_dir}"]


def run_once(variant: str, cfg, arrays: dict, epochs: int) -> dict[str, float]:
    import gc

    import keras

    gc.collect()
    if variant == "c":
        from kexp.recipe import train

        run_cfg = copy.deepcopy(cfg)
        metrics = train(run_cfg)  # train() fills in paths.output_dir
        return {"images_per_second": metrics["examples_per_second"],
                "first_step_seconds": metrics["seconds_to_first_step"],
                "flops_per_image": metrics["flops"],
                "steps_per_execution": logged_steps_per_execution(run_cfg)}
    keras.backend.clear_session()  # as kexp's prepare() does
    keras.utils.set_random_seed(cfg.trainer.seed)
    return fit_by_hand(variant, cfg, arrays, epochs)


def logged_steps_per_execution(cfg) -> int | None:
    """The steps per call c's run logged to its MLflow store as `resolved.steps_per_execution`
    (what `auto` chose, or the number it was given); None with `--kexp logger=none`."""
    from mlflow import MlflowClient

    from kexp import run_dir
    from kexp.tracking.runs import store_uri

    run_id = run_dir.read_run_id(Path(cfg.paths.output_dir))
    if run_id is None:
        return None
    params = MlflowClient(tracking_uri=store_uri(cfg)).get_run(run_id).data.params
    return int(params["resolved.steps_per_execution"])


def fit_by_hand(variant: str, cfg, arrays: dict, epochs: int) -> dict[str, float]:
    """What a user writes: the same model, optimizer, loss, metric, batch size and epochs, and
    the same validation examples each epoch (their pass is outside the timed part, as in c)."""
    import keras
    import tensorflow as tf

    from kexp import models
    from kexp.training.throughput import Throughput

    started = time.perf_counter()
    (x, y), (x_val, y_val) = arrays["train"], arrays["val"]
    model = models.build(cfg.model, x.shape[1:], CLASSES)
    model.compile(optimizer=keras.optimizers.Adam(cfg.optimizer.lr),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    throughput = Throughput(len(x), started=started)
    if variant == "a":
        model.fit(x, y, batch_size=BATCH_SIZE, epochs=epochs, validation_data=(x_val, y_val),
                  callbacks=[throughput], verbose=0)
    else:
        train = (tf.data.Dataset.from_tensor_slices((x, y)).cache().shuffle(len(x))
                 .batch(BATCH_SIZE).prefetch(tf.data.AUTOTUNE))
        val = (tf.data.Dataset.from_tensor_slices((x_val, y_val)).batch(BATCH_SIZE).cache()
               .prefetch(tf.data.AUTOTUNE))
        model.fit(train, epochs=epochs, validation_data=val, callbacks=[throughput], verbose=0)
    return {"images_per_second": round(throughput.per_second, 1),
            "first_step_seconds": round(throughput.first_step_seconds or 0.0, 2)}


def summarize(case: Case, cfg, runs: dict[str, list], epochs: int,
              peak: dict[str, Any]) -> dict[str, Any]:
    def median(key: str, digits: int) -> dict[str, float]:
        return {v: round(statistics.median(r[key] for r in runs[v]), digits) for v in VARIANTS}

    def runs_of(variant: str) -> list[float]:
        return [r["images_per_second"] for r in runs[variant]]

    ips, flops = median("images_per_second", 1), runs["c"][0]["flops_per_image"]
    return {"model": case.model, "overrides": list(case.overrides),
            "input_shape": case.input_shape, "classes": CLASSES, "batch_size": BATCH_SIZE,
            "train_examples": case.train_examples, "steps_per_epoch": case.steps,
            "epochs": epochs, "images_per_second": ips,
            "ratio_c_a": round(ips["c"] / ips["a"], 3), "ratio_c_b": round(ips["c"] / ips["b"], 3),
            "first_step_seconds": median("first_step_seconds", 2),
            # what c ran from its second epoch on, per repeat
            "steps_per_execution_c": [r["steps_per_execution"] for r in runs["c"]],
            "runs": {v: runs_of(v) for v in VARIANTS},
            # the noise: each repeat's c against the a or b run next to it in time
            "ratios_per_repeat": {f"c/{v}": [round(c / x, 3) for c, x in zip(
                runs_of("c"), runs_of(v), strict=True)] for v in ("a", "b")},
            "flops_per_image": flops, "mfu": mfu(flops, ips, peak, cfg.trainer.precision)}


def gpu_peak() -> dict[str, Any]:
    """The GPU the runs used, by name, with its known peaks ({} without a GPU)."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return {}
    return peak_of(tf.config.experimental.get_device_details(gpus[0]).get("device_name",
                                                                          gpus[0].name))


def peak_of(device: str) -> dict[str, Any]:
    label, peaks = next(((label, peaks) for label, pattern, peaks in PEAK_TFLOPS
                         if re.search(pattern, device)), (None, {}))
    return {"device": device, "peak_of": label, "tflops": peaks}


def mfu(flops: int, images_per_second: dict[str, float], peak: dict[str, Any],
        precision: str) -> dict[str, Any]:
    """Model FLOPs utilization: 3 x forward FLOPs (forward + backward) x images/s / peak."""
    if not peak:
        return {"measured": False, "why": "no GPU"}
    import tensorflow as tf

    dtype = "fp16/bf16" if precision.startswith("mixed") else (
        "tf32" if tf.config.experimental.tensor_float_32_execution_enabled() else "fp32")
    if dtype not in peak["tflops"]:
        return {"measured": False, "why": f"unknown peak for {peak['device']}"}
    tflops = peak["tflops"][dtype]
    return {"measured": True, "device": peak["device"], "peak_of": peak["peak_of"],
            "dtype": dtype, "peak_tflops": tflops,
            **{v: round(3 * flops * ips / (tflops * 1e12), 5)
               for v, ips in images_per_second.items()}}


def time_cfg_job(tmp: Path, runs: int = 3) -> dict[str, Any]:
    """Wall time of `python -m kexp --cfg job`, a subprocess each, as a user runs it."""
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "kexp", "--cfg", "job"], capture_output=True,
                              text=True, timeout=120,
                              env={**os.environ, "KEXP_LOG_DIR": str(tmp / "logs")})
        seconds.append(round(time.perf_counter() - started, 3))
        if done.returncode != 0:
            raise RuntimeError(f"python -m kexp --cfg job failed: {done.stderr[-2000:]}")
    median = statistics.median(seconds)
    return {"median": median, "runs": seconds, "goal": CFG_JOB_GOAL_SECONDS,
            "goal_met": median < CFG_JOB_GOAL_SECONDS}


def machine() -> dict[str, Any]:
    try:
        cpu = re.findall(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)[0]
    except (OSError, IndexError):
        cpu = platform.processor() or platform.machine()
    return {"cores": os.cpu_count(), "cpu": cpu, "platform": platform.platform(),
            "gpu": gpu_peak().get("device")}


def versions() -> dict[str, str]:
    import keras
    import mlflow
    import numpy
    import tensorflow as tf

    import kexp

    return {"python": platform.python_version(), "tensorflow": tf.__version__,
            "keras": keras.__version__, "kexp": kexp.__version__, "numpy": numpy.__version__,
            "mlflow": mlflow.__version__}


def format_table(result: dict[str, Any]) -> str:
    m, v, job = result["machine"], result["versions"], result["cfg_job_seconds"]
    extra = " ".join(result["kexp_extra_overrides"])
    lines = [f"\nkexp.bench ({result['mode']}): training images/s, median of {result['repeats']} "
             f"interleaved repeat(s) of {result['epochs']} epochs each, the first excluded",
             "a = numpy arrays into model.fit, b = tf.data cache/shuffle/batch/prefetch, c = kexp "
             + (f"with {extra} (NOT its defaults)" if extra else "at its defaults"),
             f"machine: {m['cores']} cores, {m['cpu']}, GPU: {m['gpu'] or 'none'}; python "
             f"{v['python']}, tensorflow {v['tensorflow']}, keras {v['keras']}, kexp {v['kexp']}",
             "", f"{'case':9} {'input':8} {'batch':>5} {'steps':>7} {'a img/s':>9} {'b img/s':>9}"
             f" {'c img/s':>9} {'c/a':>5} {'c/b':>5}  {'first step a/b/c':>17} {'MFU c':>6}"]
    for name, c in result["cases"].items():
        ips, first = c["images_per_second"], c["first_step_seconds"]
        mfu_c = f"{c['mfu']['c']:.1%}" if c["mfu"]["measured"] else "n/a"
        lines.append(
            f"{name:9} {'x'.join(map(str, c['input_shape'])):8} {c['batch_size']:>5} "
            f"{c['steps_per_epoch']:>3}x{c['epochs']:<3} {ips['a']:>9.1f} {ips['b']:>9.1f} "
            f"{ips['c']:>9.1f} {c['ratio_c_a']:>5.2f} {c['ratio_c_b']:>5.2f}  "
            f"{first['a']:>5.2f}/{first['b']:.2f}/{first['c']:.2f} s {mfu_c:>6}")
    spread = ", ".join(f"{name} " + " ".join(
        f"{min(r):.2f}-{max(r):.2f}" for r in c["ratios_per_repeat"].values())
        for name, c in result["cases"].items())
    mfu_any = next(iter(result["cases"].values()))["mfu"]
    calls = ", ".join(f"{name} {'/'.join(map(str, c['steps_per_execution_c']))}"
                      for name, c in result["cases"].items())
    lines += [f"c/a and c/b of the runs side by side in each repeat, lowest-highest: {spread}",
              f"c's steps per call after its first epoch, per repeat: {calls}",
              "", f"python -m kexp --cfg job: {job['median']:.2f} s, median of {len(job['runs'])}"
              f" (goal < {job['goal']:.0f} s: {'met' if job['goal_met'] else 'NOT met'})",
              "MFU: " + (f"{mfu_any['device']}, peak {mfu_any['peak_tflops']} TFLOP/s "
                         f"({mfu_any['dtype']}, {mfu_any['peak_of']})" if mfu_any["measured"]
                         else f"not measured ({mfu_any['why']})"),
              f"total {result['total_seconds']:.0f} s"]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
