"""`make bench` / `python -m kexp.bench`: kexp's training speed against hand-written Keras.

One case per task (kexp/bench_cases.py: classification of images and texts, regression on a
table, a DCGAN, a character language model, an encoder-decoder), each against the Keras a user
would write for it, the same model and batch, timed in one process and interleaved over
repeats: a = plain Keras (numpy arrays into model.fit, or the task's hand-written script),
b = hand-written tf.data best practice (the three-way cases), c = kexp at its defaults.

All are timed by the Throughput callback of every kexp run (training examples/s of each epoch,
validation left out, first epoch excluded, median); the table has the median over repeats and
the ratios c/a and c/b against their goals, time to the first training step, the steps per call
kexp's `trainer.steps_per_execution=auto` chose, `python -m kexp --cfg job`'s wall time and, on
a GPU, the model FLOPs utilization. Results: docs/benchmarks.md.

    python -m kexp.bench [--quick] [--repeats R] [--cases mlp,cnn,...] [--out PATH]
                         [--kexp KEY=VALUE ...]   (an override for c only: "what if" a default)
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kexp.bench_cases import BATCH_SIZE, FULL, QUICK, Case, Prepared, TaskCase, prepare

CFG_JOB_GOAL_SECONDS = 2.0
FIRST_STEP_GOAL_SECONDS = 1.0  # c's first training step at most this much after a's
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
                  "cases": run_cases({n: table[n] for n in args.cases}, args.quick, epochs,
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


def run_cases(cases: dict[str, Case | TaskCase], quick: bool, epochs: int, repeats: int,
              extra: list[str], tmp: Path) -> dict[str, Any]:
    """Every case's variants `repeats` times, interleaved, the order rotated per repeat."""
    prepared = {name: prepare(name, case, quick, epochs, extra, tmp)
                for name, case in cases.items()}
    runs: dict[str, dict[str, list]] = {name: {v: [] for v in p.variants}
                                        for name, p in prepared.items()}
    for r in range(repeats):
        for name, p in prepared.items():
            turn = r % len(p.variants)
            for variant in p.variants[turn:] + p.variants[:turn]:
                started = time.time()
                last = p.run(variant)
                if variant == "c":
                    last["steps_per_execution"] = steps_per_execution(p.cfg, started)
                runs[name][variant].append(last)
                print(f"[kexp.bench] repeat {r + 1}/{repeats} {name:16} {variant}: "
                      f"{last['per_second']:9.1f} {cases[name].unit}/s, first step "
                      f"{last['first_step_seconds']:.2f} s, run {time.time() - started:.1f} s",
                      flush=True)
    peak = gpu_peak()
    return {name: summarize(cases[name], prepared[name], runs[name], peak) for name in cases}


def steps_per_execution(cfg: Any, since: float) -> int | None:
    """The steps per call of c's run: what `auto` chose (`resolved.steps_per_execution` in the
    MLflow run c started after `since`), or the number the config gives; None when `auto` ran
    without MLflow (`--kexp logger=none`)."""
    if str(cfg.trainer.steps_per_execution) != "auto":
        return int(cfg.trainer.steps_per_execution)
    from mlflow import MlflowClient

    from kexp.tracking.tracker import mlflow_tracker

    tracker = mlflow_tracker(cfg.logger, Path(cfg.paths.log_dir))
    if tracker is None:
        return None
    client = MlflowClient(tracking_uri=tracker.tracking_uri)
    found = client.search_runs([e.experiment_id for e in client.search_experiments()],
                               f"attributes.start_time >= {int(since * 1000)}",
                               order_by=["attributes.start_time DESC"], max_results=1)
    value = found[0].data.params.get("resolved.steps_per_execution") if found else None
    return None if value is None else int(value)


def summarize(case: Case | TaskCase, prepared: Prepared, runs: dict[str, list],
              peak: dict[str, Any]) -> dict[str, Any]:
    variants, cfg = prepared.variants, prepared.cfg

    def median(key: str, digits: int) -> dict[str, float]:
        return {v: round(statistics.median(r[key] for r in runs[v]), digits) for v in variants}

    def runs_of(variant: str) -> list[float]:
        return [r["per_second"] for r in runs[variant]]

    params = {v: runs[v][0].get("params") for v in variants}
    if None not in params.values() and len(set(params.values())) != 1:
        raise RuntimeError(f"the hand-written model is not kexp's: {params} weights")
    speed, first = median("per_second", 1), median("first_step_seconds", 2)
    ratios = {f"ratio_c_{v}": round(speed["c"] / speed[v], 3) for v in variants if v != "c"}
    three_way = isinstance(case, Case)
    flops = runs["c"][0].get("flops")
    return {
        "kind": case.kind if three_way else "task", "unit": case.unit,
        "model": case.model if three_way else str(cfg.model.name),
        "task": str(cfg.task._target_),
        "overrides": list(case.overrides) if three_way else [],
        "input_shape": case.input_shape if three_way else None,
        "batch_size": int(cfg.trainer.batch_size),
        "train_examples": case.train_examples if three_way else None,
        "steps_per_epoch": case.steps if three_way else None,
        "epochs": int(cfg.trainer.epochs), "params": params["c"],
        f"{case.unit}_per_second": speed, "ratio_c_b": None, **ratios,
        "goal_c_a": case.goal, "goal_met": ratios["ratio_c_a"] >= case.goal,
        "first_step_seconds": first,
        "first_step_behind_a": round(first["c"] - first["a"], 2),
        "first_step_goal_met": first["c"] - first["a"] <= FIRST_STEP_GOAL_SECONDS,
        # what c ran from its second epoch on, per repeat
        "steps_per_execution_c": [r["steps_per_execution"] for r in runs["c"]],
        "runs": {v: runs_of(v) for v in variants},
        # the noise: each repeat's c against the a or b run next to it in time
        "ratios_per_repeat": {f"c/{v}": [round(c / x, 3) for c, x in zip(
            runs_of("c"), runs_of(v), strict=True)] for v in variants if v != "c"},
        f"flops_per_{case.unit.removesuffix('s')}": flops,
        "mfu": mfu(flops, speed, peak, cfg.trainer.precision)}


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


def mfu(flops: int | None, images_per_second: dict[str, float], peak: dict[str, Any],
        precision: str) -> dict[str, Any]:
    """Model FLOPs utilization: 3 x forward FLOPs (forward + backward) x images/s / peak."""
    if not peak:
        return {"measured": False, "why": "no GPU"}
    if not flops:
        return {"measured": False, "why": "forward FLOPs not counted for this task"}
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
    lines = [f"\nkexp.bench ({result['mode']}): training examples/s, median of "
             f"{result['repeats']} interleaved repeat(s), the first epoch of each run excluded",
             "a = plain Keras (numpy arrays into model.fit, or the task's hand-written script), "
             "b = tf.data cache/shuffle/batch/prefetch, c = kexp "
             + (f"with {extra} (NOT its defaults)" if extra else "at its defaults"),
             f"machine: {m['cores']} cores, {m['cpu']}, GPU: {m['gpu'] or 'none'}; python "
             f"{v['python']}, tensorflow {v['tensorflow']}, keras {v['keras']}, kexp {v['kexp']}",
             "", f"{'case':16} {'unit':6} {'batch':>5} {'steps':>7} {'a /s':>9} {'b /s':>9}"
             f" {'c /s':>9} {'c/a':>5} {'goal':>5} {'c/b':>5}  {'first step a/b/c':>17}"
             f" {'MFU c':>6}"]

    def number(value: float | None, width: int, digits: int) -> str:
        return f"{'-':>{width}}" if value is None else f"{value:>{width}.{digits}f}"

    for name, c in result["cases"].items():
        speed, first = c[f"{c['unit']}_per_second"], c["first_step_seconds"]
        mfu_c = f"{c['mfu']['c']:.1%}" if c["mfu"]["measured"] else "n/a"
        steps = f"{c['steps_per_epoch']}x{c['epochs']}" if c["steps_per_epoch"] else \
            f"x{c['epochs']}"
        met = "" if c["goal_met"] else "!"
        lines.append(
            f"{name:16} {c['unit']:6} {c['batch_size']:>5} {steps:>7} {speed['a']:>9.1f} "
            f"{number(speed.get('b'), 9, 1)} {speed['c']:>9.1f} {c['ratio_c_a']:>5.2f} "
            f"{c['goal_c_a']:>4.1f}{met or ' '} {number(c['ratio_c_b'], 5, 2)}  "
            f"{first['a']:>5.2f}/{number(first.get('b'), 0, 2)}/{first['c']:.2f} s {mfu_c:>6}")
    spread = ", ".join(f"{name} " + " ".join(
        f"{min(r):.2f}-{max(r):.2f}" for r in c["ratios_per_repeat"].values())
        for name, c in result["cases"].items())
    missed = [name for name, c in result["cases"].items() if not c["goal_met"]]
    slow_start = [f"{name} +{c['first_step_behind_a']:.2f} s" for name, c
                  in result["cases"].items() if not c["first_step_goal_met"]]
    mfu_any = next(iter(result["cases"].values()))["mfu"]
    calls = ", ".join(f"{name} {'/'.join(map(str, c['steps_per_execution_c']))}"
                      for name, c in result["cases"].items())
    lines += ["(! = c/a below its goal)",
              f"c/a and c/b of the runs side by side in each repeat, lowest-highest: {spread}",
              f"goal c/a missed: {', '.join(missed) or 'none'}; first step more than "
              f"{FIRST_STEP_GOAL_SECONDS:.0f} s after a's: {', '.join(slow_start) or 'none'}",
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
