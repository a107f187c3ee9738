"""`python -m kexp.tasks.seq2seq.bench`: kexp's translation training speed in target tokens
per second against a hand-written Keras encoder-decoder of the same layers and batch.

Two ways to train the same network on the same pairs, timed in one process and interleaved
over repeats (kexp/side_by_side.py):

    keras  hand-written, the TensorFlow "NMT with attention" pattern in Keras 3: the training
           pairs as padded numpy id arrays (source, [START] target, target [END], a 0/1
           weight on padding), tf.data from_tensor_slices/shuffle/batch/prefetch, a
           functional model of plain Keras layers (Embedding -> GRU encoder with its final
           state -> Embedding -> GRU decoder -> Bahdanau AdditiveAttention over the encoder
           outputs, masks from `ids != 0` -> Concatenate -> Dense(tanh) -> Dropout -> Dense
           over the target vocabulary), compile(Adam, SparseCategoricalCrossentropy(
           from_logits=True), weighted accuracy), fit
    kexp   `kexp.recipe.train(cfg)`, cfg as `python -m kexp task=seq2seq model=rnn_seq2seq
           data=parallel_text data.path=<pairs> logger=none ...` composes it

The hand-written side takes its token ids from kexp's vocabularies of the same run (so both
networks have the same vocabulary sizes, which the benchmark checks through their weight
counts); tokenizing is outside both clocks. Both are timed by kexp's Throughput callback
(training examples/s from `on_epoch_begin` to the validation pass or `on_epoch_end`, first
epoch excluded, median) times the mean target tokens of a training pair.

    python -m kexp.tasks.seq2seq.bench [--pairs FILE] [--max-pairs N] [--quick]
                                       [--repeats R] [--epochs E] [--out PATH]

Without --pairs the pairs are generated (reversed word sequences). Results:
docs/benchmarks.md, "Translation (task=seq2seq)".
"""

from __future__ import annotations

import argparse
import datetime
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kexp.side_by_side import SIDES, compare, interleaved, run_side

GOAL_RATIO = 1.0


@dataclass(frozen=True)
class Mode:
    max_pairs: int
    epochs: int
    repeats: int
    overrides: tuple[str, ...] = ()  # model knobs (both sides)


# full: kexp's rnn_seq2seq defaults (GRU 256, Bahdanau, embedding 128, batch 64)
FULL = Mode(max_pairs=6000, epochs=4, repeats=3)
# CI: tiny, to show the benchmark runs and writes its JSON (the numbers mean nothing)
QUICK = Mode(max_pairs=400, epochs=2, repeats=1,
             overrides=("model.units=16", "model.embedding_dim=8"))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m kexp.tasks.seq2seq.bench", description="Training target tokens/s of a "
        "hand-written Keras encoder-decoder and of kexp's task=seq2seq model=rnn_seq2seq with "
        "the same layers and batch: prints a markdown table, writes JSON.")
    parser.add_argument("--pairs", type=Path, help="a source<TAB>target file (default: "
                        "generated)")
    parser.add_argument("--max-pairs", type=int, help=f"pairs read (default {FULL.max_pairs}; "
                        f"quick: {QUICK.max_pairs})")
    parser.add_argument("--quick", action="store_true", help="CI mode: a tiny model, 2 "
                        "epochs, 1 repeat (the numbers mean nothing)")
    parser.add_argument("--repeats", type=int, help=f"interleaved repeats (default "
                        f"{FULL.repeats}; quick: {QUICK.repeats})")
    parser.add_argument("--epochs", type=int, help=f"epochs per run (default {FULL.epochs})")
    parser.add_argument("--out", type=Path, help="the JSON (default: logs/bench/"
                        "seq2seq_bench.json)")
    args = parser.parse_args(argv)
    for name in ("repeats", "max_pairs"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.epochs is not None and args.epochs < 2:
        parser.error("--epochs must be at least 2 (the first epoch, tracing, is not timed)")
    if args.pairs is not None and not args.pairs.is_file():
        parser.error(f"--pairs: {args.pairs} is not a file")
    args.out = args.out or Path("logs") / "bench" / "seq2seq_bench.json"
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    mode = QUICK if args.quick else FULL
    mode = Mode(args.max_pairs or mode.max_pairs, args.epochs or mode.epochs,
                args.repeats or mode.repeats, mode.overrides)
    from kexp.environment import import_tensorflow_quietly

    import_tensorflow_quietly()
    from kexp.bench import machine, publish, versions

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="kexp-seq2seq-bench-") as tmp:
        pairs = args.pairs or generated_pairs(Path(tmp) / "pairs.tsv")
        cfg = compose_cfg(mode, pairs, Path(tmp) / "logs")
        runs = interleaved(lambda side: run_once(side, cfg), mode.repeats, "seq2seq bench")
    result = {"mode": "quick" if args.quick else "full",
              "pairs": str(args.pairs) if args.pairs else "generated",
              "date": datetime.datetime.now().isoformat(timespec="seconds"),
              "command": " ".join(["python -m kexp.tasks.seq2seq.bench",
                                   *(sys.argv[1:] if argv is None else argv)]),
              "machine": machine(), "versions": versions(), **summarize(cfg, mode, runs)}
    result["total_seconds"] = round(time.perf_counter() - started, 1)
    return publish(result, format_table(result), args.out)


def generated_pairs(path: Path, n: int = 8000) -> Path:
    """source: 3-12 words of a 500-word vocabulary; target: the same words reversed."""
    import numpy as np

    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(500)]
    lines = []
    for _ in range(n):
        chosen = list(rng.choice(words, rng.integers(3, 13)))
        lines.append(f"{' '.join(chosen)}\t{' '.join(reversed(chosen))}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def bench_case(quick: bool, tmp: Path, log_dir: Path, extra: list[str]
               ) -> tuple[Any, Callable[[str], dict[str, Any]]]:
    """`make bench`'s translation case (kexp/bench_cases.py): rnn_seq2seq on generated pairs,
    kexp logging to MLflow in `log_dir` as its defaults do, `extra` overrides on top; returns
    the config and a run of either side."""
    pairs = generated_pairs(tmp / "pairs.tsv")
    cfg = compose_cfg(QUICK if quick else FULL, pairs, log_dir, ["logger=mlflow", *extra])
    return cfg, lambda side: run_once(side, cfg)


def compose_cfg(mode: Mode, pairs: Path, log_dir: Path,
                extra: tuple[str, ...] | list[str] = ("logger=none",)) -> Any:
    """What a user types after `python -m kexp`; everything else at kexp's defaults (without
    MLflow unless `extra` says so: the benchmark's own runs leave nothing behind)."""
    from hydra import compose, initialize_config_module

    with initialize_config_module("kexp.conf", version_base="1.3"):
        return compose("train", overrides=[
            "task=seq2seq", "model=rnn_seq2seq", *mode.overrides, f"data.path={pairs}",
            f"data.max_pairs={mode.max_pairs}", f"trainer.epochs={mode.epochs}",
            "trainer.verbose=0", "callbacks.early_stopping.enabled=false",
            "task.examples=0", f"paths.log_dir={log_dir}", *extra])


# ---------------------------------------------------------------------------- the hand-written side


def handwritten_model(cfg: Any, source_vocab: int, target_vocab: int) -> Any:
    """rnn_seq2seq at its defaults (one GRU layer each side, Bahdanau attention) in plain
    Keras."""
    import keras
    from keras import layers, ops

    m = cfg.model
    if (m.cell, m.layers, m.bidirectional, m.attention) != ("gru", 1, False, "bahdanau"):
        raise SystemExit("the hand-written side is one GRU layer each side with Bahdanau "
                         "attention: keep model.cell, layers, bidirectional, attention")
    units, rate = int(m.units), float(m.dropout)
    source = keras.Input((None,), dtype="int32")
    target = keras.Input((None,), dtype="int32")
    source_mask, target_mask = ops.not_equal(source, 0), ops.not_equal(target, 0)
    x = layers.Embedding(source_vocab, m.embedding_dim)(source)
    encoded, state = layers.GRU(units, return_sequences=True, return_state=True,
                                dropout=rate)(x, mask=source_mask)
    y = layers.Embedding(target_vocab, m.embedding_dim)(target)
    y = layers.GRU(units, return_sequences=True, dropout=rate)(y, initial_state=state,
                                                               mask=target_mask)
    query = layers.Dense(units, use_bias=False)(y)
    key = layers.Dense(units, use_bias=False)(encoded)
    context = layers.AdditiveAttention()([query, encoded, key],
                                         mask=[target_mask, source_mask])
    y = layers.Dense(units, activation="tanh")(layers.Concatenate()([context, y]))
    y = layers.Dropout(rate)(y) if rate else y
    return keras.Model([source, target], layers.Dense(target_vocab)(y))


def fit_by_hand(cfg: Any, clock: Any) -> dict[str, Any]:
    import keras
    import numpy as np
    import tensorflow as tf

    from kexp.data import load
    from kexp.data.pairs import END_ID, START_ID
    from kexp.training.throughput import Throughput

    started = time.perf_counter()
    batch = int(cfg.trainer.batch_size)
    # kexp's splits and vocabularies (the same token ids); the arrays and pipeline by hand
    bundle = load(cfg.data, batch, int(cfg.trainer.seed))
    vocab = bundle.tokenizer
    encoded = [(vocab.source.encode(vocab.prepare(s)), vocab.target.encode(vocab.prepare(t)))
               for s, t in bundle.pairs["train"]]
    src = np.zeros((len(encoded), vocab.source_length), np.int32)
    tin = np.zeros((len(encoded), vocab.target_length), np.int32)
    tout = np.zeros_like(tin)
    for row, (s, t) in enumerate(encoded):
        src[row, :len(s)] = s
        tin[row, :len(t) + 1] = [START_ID, *t]
        tout[row, :len(t) + 1] = [*t, END_ID]
    weight = (tout != 0).astype(np.float32)
    model = handwritten_model(cfg, vocab.source.vocab_size, vocab.target.vocab_size)
    model.compile(optimizer=keras.optimizers.Adam(float(cfg.optimizer.lr)),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  weighted_metrics=["accuracy"])
    dataset = (tf.data.Dataset.from_tensor_slices(((src, tin), tout, weight))
               .shuffle(len(src)).batch(batch).prefetch(tf.data.AUTOTUNE))
    throughput = Throughput(len(src), started=started)
    model.fit(dataset, epochs=int(cfg.trainer.epochs), callbacks=[throughput, clock],
              verbose=0, shuffle=False)
    tokens_per_pair = float(weight.sum()) / len(src)  # as kexp's spec.tokens_per_example
    return {"tokens_per_second": round(throughput.per_second * tokens_per_pair, 1),
            "first_step_seconds": round(throughput.first_step_seconds or 0.0, 2),
            "params": int(model.count_params())}


def run_once(side: str, cfg: Any) -> dict[str, Any]:
    from kexp.tasks.seq2seq.task import Seq2Seq

    return run_side(side, cfg, Seq2Seq, lambda clock: fit_by_hand(cfg, clock))


def summarize(cfg: Any, mode: Mode, runs: dict[str, list]) -> dict[str, Any]:
    from omegaconf import OmegaConf

    return {"model_config": OmegaConf.to_container(cfg.model, resolve=True),
            "batch_size": int(cfg.trainer.batch_size), "max_pairs": mode.max_pairs,
            "epochs": mode.epochs, "repeats": mode.repeats, **compare(runs, GOAL_RATIO)}


def format_table(result: dict[str, Any]) -> str:
    m, v, tps, epoch = (result["machine"], result["versions"], result["tokens_per_second"],
                        result["epoch_seconds"])
    labels = {"keras": "hand-written Keras GRU encoder-decoder, Bahdanau attention",
              "kexp": "kexp task=seq2seq model=rnn_seq2seq"}
    per_repeat = result["ratios_per_repeat"]
    runs = {s: ", ".join(f"{r['tokens_per_second']:.0f}" for r in result["runs"][s])
            for s in SIDES}
    return "\n".join([
        f"\n## kexp.tasks.seq2seq.bench ({result['mode']})\n",
        f"{result['params']:,} weights, batch {result['batch_size']}, {result['max_pairs']} "
        f"pairs read ({result['pairs']}), {result['epochs']} epochs, {result['repeats']} "
        f"interleaved repeat(s). Training target tokens/s: kexp's Throughput callback (first "
        f"epoch excluded), median over repeats.",
        f"machine: {m['cores']} cores, {m['cpu']}, GPU: {m['gpu'] or 'none'}; python "
        f"{v['python']}, tensorflow {v['tensorflow']}, keras {v['keras']}, kexp {v['kexp']}",
        "",
        "| side | training target tokens/s | runs | whole epoch s |",
        "|---|---:|---|---:|",
        *(f"| {labels[s]} | {tps[s]:.0f} | {runs[s]} | {epoch[s]:.2f} |" for s in SIDES),
        f"| **kexp / hand-written** | **{result['ratio_kexp_keras']:.2f}x** | per repeat "
        f"{min(per_repeat):.2f}-{max(per_repeat):.2f} | |",
        "",
        f"Goal kexp / hand-written >= {result['goal_ratio']:.1f}x (training tokens/s): "
        f"{'met' if result['goal_met'] else 'NOT met'}. The whole epoch includes kexp's "
        f"validation pass, checkpoint and backup.",
    ])


if __name__ == "__main__":
    main()
