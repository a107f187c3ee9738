"""`python -m kexp.tasks.language_model.bench`: kexp's language-model training speed in
tokens per second against a hand-written Keras model of the same layers and batch.

Two ways to train the same network on the same text, timed in one process and interleaved
over repeats:

    keras  hand-written, the keras-io character-LSTM pattern: a dict from characters to ids,
           windows of `context` characters at random offsets as numpy arrays,
           tf.data from_tensor_slices/shuffle/batch/prefetch, a functional model of plain
           Keras layers (Embedding -> LSTM -> Dropout -> Dense over the characters, or a
           GPT of Embedding + position Embedding, MultiHeadAttention(use_causal_mask=True)
           and MLP blocks), compile(Adam, SparseCategoricalCrossentropy(from_logits=True),
           ["accuracy"]), fit
    kexp   `kexp.recipe.train(cfg)`, cfg as `python -m kexp task=language_model model=<m>
           data=text_file data.path=<text> logger=none ...` composes it

The hand-written model is checked to have exactly as many weights as kexp's. Both are timed
by kexp's Throughput callback (kexp/training/throughput.py): per epoch from `on_epoch_begin`
to the validation pass (kexp) or to `on_epoch_end` (hand-written, which has none), first
epoch (tracing) excluded, the median of the others; tokens/s = windows/s x context. kexp's
epoch-end sample, validation pass, checkpoint and backup are outside that clock, and the
whole-epoch wall time is reported beside it.

    python -m kexp.tasks.language_model.bench [--model lstm|gpt_mini] [--text FILE]
                                              [--quick] [--repeats R] [--out PATH]

Without --text the text is generated (words of a fixed 60-character alphabet). Results:
docs/benchmarks.md, "Language models (task=language_model)".
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kexp.side_by_side import SIDES, compare, interleaved, run_side

MODELS = ("lstm", "gpt_mini")
GOAL_RATIO = 1.0
ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ .,;!?'\n"


@dataclass(frozen=True)
class Mode:
    steps: int  # training steps per epoch
    epochs: int
    repeats: int
    context: int
    overrides: tuple[str, ...] = ()  # model knobs (both sides)


# full: about a minute a run for the lstm on 2 CPU cores at kexp's defaults (batch 64,
# context 128); gpt_mini is ~8x slower a token here, so measure it with --steps 20
FULL = Mode(steps=60, epochs=4, repeats=3, context=128)
# CI: tiny, to show the benchmark runs and writes its JSON (the numbers mean nothing)
QUICK = Mode(steps=3, epochs=2, repeats=1, context=16,
             overrides=("model.units=16", "model.embedding_dim=16", "model.num_layers=1",
                        "model.embed_dim=16", "model.num_heads=2"))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m kexp.tasks.language_model.bench", description="Training tokens/s of "
        "a hand-written Keras language model and of kexp's task=language_model with the same "
        "layers and batch: prints a markdown table, writes JSON.")
    parser.add_argument("--model", choices=MODELS, default="lstm")
    parser.add_argument("--text", type=Path, help="a UTF-8 text file (default: generated)")
    parser.add_argument("--quick", action="store_true", help="CI mode: a tiny model, 3 steps x "
                        "2 epochs, 1 repeat (the numbers mean nothing)")
    parser.add_argument("--repeats", type=int, help=f"interleaved repeats (default "
                        f"{FULL.repeats}; quick: {QUICK.repeats})")
    parser.add_argument("--steps", type=int, help=f"training steps per epoch (default "
                        f"{FULL.steps}; quick: {QUICK.steps})")
    parser.add_argument("--out", type=Path, help="the JSON (default: logs/bench/"
                        "lm_bench_<model>.json)")
    args = parser.parse_args(argv)
    if args.repeats is not None and args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.steps is not None and args.steps < 1:
        parser.error("--steps must be at least 1")
    if args.text is not None and not args.text.is_file():
        parser.error(f"--text: {args.text} is not a file")
    args.out = args.out or Path("logs") / "bench" / f"lm_bench_{args.model}.json"
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    mode = QUICK if args.quick else FULL
    if args.steps:
        mode = dataclasses.replace(mode, steps=args.steps)
    repeats = args.repeats or mode.repeats
    from kexp.environment import import_tensorflow_quietly

    import_tensorflow_quietly()
    from kexp.bench import machine, publish, versions

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="kexp-lm-bench-") as tmp:
        text = args.text or generated_text(Path(tmp) / "generated.txt")
        cfg = compose_cfg(args.model, mode, text, Path(tmp) / "logs")
        runs = interleaved(lambda side: run_once(side, cfg, text), repeats, "lm bench")
    result = {"mode": "quick" if args.quick else "full", "model": args.model,
              "text": str(args.text) if args.text else "generated",
              "date": datetime.datetime.now().isoformat(timespec="seconds"),
              "command": " ".join(["python -m kexp.tasks.language_model.bench",
                                   *(sys.argv[1:] if argv is None else argv)]),
              "machine": machine(), "versions": versions(),
              **summarize(cfg, mode, repeats, runs)}
    result["total_seconds"] = round(time.perf_counter() - started, 1)
    return publish(result, format_table(result), args.out)


def generated_text(path: Path, characters: int = 400_000) -> Path:
    import numpy as np

    rng = np.random.default_rng(0)
    letters = np.array(list(ALPHABET))
    path.write_text("".join(rng.choice(letters, characters)), encoding="utf-8")
    return path


def bench_case(quick: bool, tmp: Path, log_dir: Path, extra: list[str]
               ) -> tuple[Any, Callable[[str], dict[str, Any]]]:
    """`make bench`'s language-model case (kexp/bench_cases.py): the lstm on generated text,
    kexp logging to MLflow in `log_dir` as its defaults do, `extra` overrides on top; returns
    the config and a run of either side."""
    text = generated_text(tmp / "generated.txt")
    cfg = compose_cfg("lstm", QUICK if quick else FULL, text, log_dir, ["logger=mlflow", *extra])
    return cfg, lambda side: run_once(side, cfg, text)


def compose_cfg(model: str, mode: Mode, text: Path, log_dir: Path,
                extra: tuple[str, ...] | list[str] = ("logger=none",)) -> Any:
    """What a user types after `python -m kexp`; everything else at kexp's defaults (without
    MLflow unless `extra` says so: the benchmark's own runs leave nothing behind)."""
    from hydra import compose, initialize_config_module

    with initialize_config_module("kexp.conf", version_base="1.3"):
        base = compose("train", overrides=["task=language_model", f"model={model}"])
        keep = [o for o in mode.overrides if o.split("=")[0].split(".")[1] in base.model]
        batch = int(base.trainer.batch_size)
        return compose("train", overrides=[
            "task=language_model", f"model={model}", *keep, "data=text_file",
            f"data.path={text}", f"data.context={mode.context}",
            f"data.epoch_tokens={mode.steps * batch * mode.context}",
            f"trainer.epochs={mode.epochs}", "trainer.verbose=0",
            "callbacks.early_stopping.enabled=false", f"paths.log_dir={log_dir}", *extra])


# ---------------------------------------------------------------------------- the hand-written side


def handwritten_model(cfg: Any, vocab_size: int) -> Any:
    """The network a user writes for `cfg.model` (lstm or gpt_mini knobs) in plain Keras."""
    import keras
    from keras import layers

    m, context, rate = cfg.model, int(cfg.data.context), float(cfg.model.dropout)

    def dropout(t: Any) -> Any:
        return layers.Dropout(rate)(t) if rate else t

    ids = keras.Input((context,), dtype="int32")
    if m.name == "lstm":
        x = layers.Embedding(vocab_size, m.embedding_dim)(ids)
        for _ in range(m.layers):
            x = layers.LSTM(m.units, return_sequences=True, dropout=rate)(x)
        x = dropout(x)
    else:  # gpt_mini: nanoGPT's pre-norm block, causal attention, a 4x gelu MLP
        d = int(m.embed_dim)
        x = dropout(token_and_position_embedding()(context, vocab_size, d)(ids))
        for _ in range(m.num_layers):
            h = layers.LayerNormalization(epsilon=1e-6)(x)
            h = layers.MultiHeadAttention(m.num_heads, d // m.num_heads, dropout=rate)(
                h, h, use_causal_mask=True)
            x = x + dropout(h)
            h = layers.LayerNormalization(epsilon=1e-6)(x)
            h = layers.Dense(m.ff_dim or 4 * d, activation=m.activation)(h)
            x = x + dropout(layers.Dense(d)(h))
        x = layers.LayerNormalization(epsilon=1e-6)(x)
    return keras.Model(ids, layers.Dense(vocab_size)(x))


def token_and_position_embedding() -> type:
    """keras-io's "Text generation with a miniature GPT" layer, as written there."""
    from keras import layers, ops

    class TokenAndPositionEmbedding(layers.Layer):
        def __init__(self, maxlen, vocab_size, embed_dim):
            super().__init__()
            self.token_emb = layers.Embedding(input_dim=vocab_size, output_dim=embed_dim)
            self.pos_emb = layers.Embedding(input_dim=maxlen, output_dim=embed_dim)

        def call(self, x):
            maxlen = ops.shape(x)[-1]
            positions = ops.arange(0, maxlen, 1)
            positions = self.pos_emb(positions)
            x = self.token_emb(x)
            return x + positions

    return TokenAndPositionEmbedding


def fit_by_hand(cfg: Any, text: Path, clock: Any) -> dict[str, Any]:
    """The char-level recipe a user writes, over kexp's training split of the same text."""
    import keras
    import numpy as np
    import tensorflow as tf

    from kexp.training.throughput import Throughput

    started = time.perf_counter()
    raw = text.read_text(encoding="utf-8")
    train = raw[:int(len(raw) * (1 - cfg.data.val_fraction - cfg.data.test_fraction))]
    chars = sorted(set(train))
    index = {c: i + 2 for i, c in enumerate(chars)}  # 0 padding, 1 unknown, as kexp counts
    ids = np.array([index[c] for c in train], np.int32)
    context, batch = int(cfg.data.context), int(cfg.trainer.batch_size)
    windows = int(cfg.data.epoch_tokens) // context
    offsets = np.random.default_rng(0).integers(0, len(ids) - context - 1, windows)
    x = np.stack([ids[o:o + context] for o in offsets])
    y = np.stack([ids[o + 1:o + context + 1] for o in offsets])
    model = handwritten_model(cfg, len(chars) + 2)
    model.compile(optimizer=keras.optimizers.Adam(float(cfg.optimizer.lr)),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    dataset = (tf.data.Dataset.from_tensor_slices((x, y)).shuffle(windows).batch(batch)
               .prefetch(tf.data.AUTOTUNE))
    throughput = Throughput(windows, started=started)
    # shuffle=False: the dataset shuffles (Keras would only warn that it ignores shuffle=True)
    model.fit(dataset, epochs=int(cfg.trainer.epochs), callbacks=[throughput, clock], verbose=0,
              shuffle=False)
    return {"tokens_per_second": round(throughput.per_second * context, 1),
            "first_step_seconds": round(throughput.first_step_seconds or 0.0, 2),
            "params": int(model.count_params())}


# ---------------------------------------------------------------------------- timing


def run_once(side: str, cfg: Any, text: Path) -> dict[str, Any]:
    from kexp.tasks.language_model.task import LanguageModel

    return run_side(side, cfg, LanguageModel, lambda clock: fit_by_hand(cfg, text, clock))


def summarize(cfg: Any, mode: Mode, repeats: int, runs: dict[str, list]) -> dict[str, Any]:
    from omegaconf import OmegaConf

    return {"model_config": OmegaConf.to_container(cfg.model, resolve=True),
            "batch_size": int(cfg.trainer.batch_size), "context": int(cfg.data.context),
            "steps_per_epoch": mode.steps, "epochs": mode.epochs, "repeats": repeats,
            **compare(runs, GOAL_RATIO)}


def format_table(result: dict[str, Any]) -> str:
    m, v, tps, epoch = (result["machine"], result["versions"], result["tokens_per_second"],
                        result["epoch_seconds"])
    labels = {"keras": f"hand-written Keras {result['model']}",
              "kexp": f"kexp task=language_model model={result['model']}"}
    per_repeat = result["ratios_per_repeat"]
    runs = {s: ", ".join(f"{r['tokens_per_second']:.0f}" for r in result["runs"][s])
            for s in SIDES}
    lines = [
        f"\n## kexp.tasks.language_model.bench ({result['mode']}, {result['model']})\n",
        f"{result['params']:,} weights, batch {result['batch_size']} x context "
        f"{result['context']}, {result['steps_per_epoch']} steps x {result['epochs']} epochs, "
        f"{result['repeats']} interleaved repeat(s), text: {result['text']}. Training "
        f"tokens/s: kexp's Throughput callback (first epoch excluded), median over repeats.",
        f"machine: {m['cores']} cores, {m['cpu']}, GPU: {m['gpu'] or 'none'}; python "
        f"{v['python']}, tensorflow {v['tensorflow']}, keras {v['keras']}, kexp {v['kexp']}",
        "",
        "| side | training tokens/s | runs | whole epoch s |",
        "|---|---:|---|---:|",
        *(f"| {labels[s]} | {tps[s]:.0f} | {runs[s]} | {epoch[s]:.2f} |" for s in SIDES),
        f"| **kexp / hand-written** | **{result['ratio_kexp_keras']:.2f}x** | per repeat "
        f"{min(per_repeat):.2f}-{max(per_repeat):.2f} | |",
        "",
        f"Goal kexp / hand-written >= {result['goal_ratio']:.1f}x (training tokens/s): "
        f"{'met' if result['goal_met'] else 'NOT met'}. The whole epoch includes kexp's "
        f"validation pass, sample, checkpoint and backup.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
