"""Timing a hand-written Keras script against kexp on the same network and batch, in one
process: the pieces the task benchmarks share (kexp/tasks/language_model/bench.py,
kexp/tasks/seq2seq/bench.py).

Both sides run `repeats` times, interleaved, the order swapped each repeat, so a machine that
slows down mid-way slows both; the ratio is the kexp median over the hand-written median of
the training speed kexp's Throughput callback measures (first epoch excluded), with the
per-repeat ratios beside it. A comparison of networks of different sizes is refused.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

SIDES = ("keras", "kexp")


class WholeEpochs:
    """Seconds from each `on_epoch_begin` to the next one (or `on_train_end`): everything an
    epoch costs, epoch-end work included. Made a Keras callback by `whole_epochs()`."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._begun: float | None = None

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.on_train_end()
        self._begun = time.perf_counter()

    def on_train_end(self, logs: dict | None = None) -> None:
        if self._begun is not None:
            self.seconds.append(time.perf_counter() - self._begun)
            self._begun = None


def whole_epochs() -> Any:
    import keras

    return type("WholeEpochs", (WholeEpochs, keras.callbacks.Callback), {})()


@contextlib.contextmanager
def clocked(task_class: type, clock: Any) -> Iterator[None]:
    """While open, every run of `task_class` has `clock` first among its task callbacks."""
    original = task_class.callbacks

    def with_clock(self: Any, *args: Any, **kwargs: Any) -> list[Any]:
        return [clock, *original(self, *args, **kwargs)]

    task_class.callbacks = with_clock
    try:
        yield
    finally:
        task_class.callbacks = original


def run_side(side: str, cfg: Any, task_class: type,
             by_hand: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    """One run of `side`: kexp's `train(cfg)` with `task_class`'s callbacks clocked, or
    `by_hand(clock)` after the fresh start kexp's `prepare()` makes; the result holds
    `tokens_per_second`, `first_step_seconds`, `params` and every epoch's whole seconds."""
    import keras

    clock = whole_epochs()
    if side == "kexp":
        from kexp.recipe import train

        with clocked(task_class, clock):
            metrics = train(copy.deepcopy(cfg))  # train() fills in paths.output_dir
        found = {"tokens_per_second": metrics["tokens_per_second"],
                 "first_step_seconds": metrics["seconds_to_first_step"],
                 "params": int(metrics["params"])}
    else:
        keras.backend.clear_session()  # as kexp's prepare() does
        keras.utils.set_random_seed(cfg.trainer.seed)
        found = by_hand(clock)
    return {**found, "epoch_seconds": [round(s, 3) for s in clock.seconds]}


def interleaved(run_once: Callable[[str], dict[str, Any]], repeats: int, label: str,
                speed: str = "tokens_per_second") -> dict[str, list[dict[str, Any]]]:
    """`run_once(side)` for both sides `repeats` times, interleaved; each result holds
    `speed`, `first_step_seconds` and `params` (equal on both sides, or RuntimeError)."""
    runs: dict[str, list] = {side: [] for side in SIDES}
    for r in range(repeats):
        for side in SIDES[r % 2:] + SIDES[:r % 2]:
            gc.collect()
            started = time.perf_counter()
            runs[side].append(last := run_once(side))
            print(f"[{label}] repeat {r + 1}/{repeats} {side:5}: {last[speed]:9.1f} "
                  f"training {speed.removesuffix('_per_second')}/s, first step "
                  f"{last['first_step_seconds']:.2f} s, run {time.perf_counter() - started:.1f} s",
                  flush=True)
    if len({runs[s][0]["params"] for s in SIDES}) != 1:
        raise RuntimeError(f"the hand-written model is not kexp's: "
                           f"{ {s: runs[s][0]['params'] for s in SIDES} } weights")
    return runs


def compare(runs: dict[str, list[dict[str, Any]]], goal: float,
            speed: str = "tokens_per_second") -> dict[str, Any]:
    """Medians per side of `speed` and of whole-epoch seconds (first epoch excluded), the
    kexp / hand-written ratio, the ratio of each repeat, and whether `goal` is met."""
    medians = {s: round(statistics.median(r[speed] for r in runs[s]), 1) for s in SIDES}
    epoch = {s: round(statistics.median(e for r in runs[s] for e in r["epoch_seconds"][1:]), 3)
             for s in SIDES}
    per_repeat = [round(k[speed] / h[speed], 3)
                  for k, h in zip(runs["kexp"], runs["keras"], strict=True)]
    ratio = round(medians["kexp"] / medians["keras"], 3)
    return {"params": runs["kexp"][0]["params"], speed: medians, "epoch_seconds": epoch,
            "ratio_kexp_keras": ratio, "ratios_per_repeat": per_repeat, "goal_ratio": goal,
            "goal_met": ratio >= goal, "runs": runs}
