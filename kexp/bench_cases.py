"""What `make bench` measures: one case per task, each with the hand-written Keras a user would
write for it (kexp/bench.py times them and prints the table).

Cases of three kinds run three ways on generated data, the same model, batch and examples:

    a  plain Keras: numpy arrays into model.fit, as in the Keras tutorials
    b  hand-written best practice: tf.data from_tensor_slices, cache, shuffle, batch, prefetch
    c  kexp: kexp.recipe.train(cfg), cfg composed as `python -m kexp model=<m> data=... ` is

    image  classification on an npz of uint8 images (data=npz)
    text   classification of texts in a CSV (data=text_csv); a and b get the same texts in
           memory and vectorize them with Keras' TextVectorization adapted on the training
           texts, inside their clock (kexp's vocabulary and ids are in c's)
    table  regression on a numeric CSV table (task=regression data=csv); a and b standardize the
           features and the target as a user would, a Dense(1) on kexp's backbone

The tasks whose hand-written script is a benchmark of its own (task=gan, language_model,
seq2seq: kexp/tasks/*/bench.py) run two ways, a (that script) and c (kexp); their
`bench_case(quick, tmp, log_dir, extra)` (tmp: a folder of its own) gives the config and a
run of either side.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BATCH_SIZE = 64  # kexp's default trainer.batch_size; the baselines use the same
CLASSES, TEST_EXAMPLES, DATA_SEED = 10, 64, 0
WORDS, TABLE_FEATURES = 2000, 64  # the generated texts' vocabulary, the table's columns
UNITS = {"image": "images", "text": "texts", "table": "rows"}


@dataclass(frozen=True)
class Case:
    """A case kexp/bench.py runs three ways (a, b, c)."""

    kind: str  # image | text | table
    model: str
    input_shape: tuple[int, ...]  # one example: H x W x C, (sequence_length,) or (features,)
    steps: int  # training steps per epoch: BATCH_SIZE x steps examples after kexp's hold-out
    overrides: tuple[str, ...] = ()  # model and data knobs, the same for a, b and c
    goal: float = 1.0  # c/a the issue asks for

    @property
    def train_examples(self) -> int:
        return self.steps * BATCH_SIZE

    @property
    def unit(self) -> str:
        return UNITS[self.kind]


@dataclass(frozen=True)
class TaskCase:
    """A case of a task with a benchmark of its own: its hand-written side (a) against kexp (c)."""

    module: str  # kexp.tasks.<task>.bench, with bench_case(quick, tmp, log_dir)
    unit: str  # what its speed counts per second
    goal: float = 1.0


MNIST, CIFAR, TEXT, TABLE = (28, 28, 1), (32, 32, 3), (128,), (TABLE_FEATURES,)
TEXT_KNOBS = (f"data.sequence_length={TEXT[0]}",)
# full: 0.5-1.3 s per timed epoch on 2 CPU cores for the image cases, many short epochs per run,
# because there TensorFlow runs some whole epochs on ~1.2 cores instead of ~1.85 (the median
# skips those); the task cases run their own benchmark's full mode
FULL: dict[str, Case | TaskCase] = {
    "mlp": Case("image", "mlp", MNIST, 128, goal=1.3),
    "cnn": Case("image", "cnn", MNIST, 32, goal=1.3),
    "resnet20": Case("image", "resnet20", CIFAR, 4),
    "vgg11": Case("image", "vgg11", CIFAR, 3),
    "lstm_text": Case("text", "lstm", TEXT, 8, TEXT_KNOBS),
    "transformer_text": Case("text", "transformer", TEXT, 8, TEXT_KNOBS),
    "mlp_table": Case("table", "mlp", TABLE, 128),
    "dcgan": TaskCase("kexp.tasks.gan.bench", "images"),
    "lstm_lm": TaskCase("kexp.tasks.language_model.bench", "tokens"),
    "seq2seq": TaskCase("kexp.tasks.seq2seq.bench", "tokens"),
}
# CI: every case tiny, to show the benchmark runs and writes its JSON (the numbers mean nothing)
QUICK_KNOBS = {"mlp": ("model.hidden_units=[32]",), "cnn": ("model.width=0.25",),
               "resnet20": ("model.width=0.25",), "vgg11": ("model.width=0.125",),
               "lstm_text": ("model.units=16", "model.embedding_dim=16"),
               "transformer_text": ("model.embed_dim=16", "model.ff_dim=32", "model.num_heads=2",
                                    "model.num_blocks=1"),
               "mlp_table": ("model.hidden_units=[32]",)}
QUICK: dict[str, Case | TaskCase] = {
    name: case if isinstance(case, TaskCase) else Case(
        case.kind, case.model, case.input_shape if case.kind != "text" else (16,), 2,
        (*QUICK_KNOBS[name], *(("data.sequence_length=16",) if case.kind == "text" else ())),
        case.goal)
    for name, case in FULL.items()}


@dataclass
class Prepared:
    """A case ready to run: its config, its variants, and one run of a variant."""

    cfg: Any
    variants: tuple[str, ...]
    run: Callable[[str], dict[str, Any]]  # -> {per_second, first_step_seconds, params?, flops?}


def prepare(name: str, case: Case | TaskCase, quick: bool, epochs: int, extra: list[str],
            tmp: Path) -> Prepared:
    """Generate the case's data, compose kexp's config and bind the runs of its variants."""
    log_dir = tmp / "logs"
    (tmp / name).mkdir(parents=True)
    if isinstance(case, TaskCase):
        bench = importlib.import_module(case.module)
        cfg, run_side = bench.bench_case(quick, tmp / name, log_dir, extra)
        speed = f"{case.unit}_per_second"

        def run_task(variant: str) -> dict[str, Any]:
            found = run_side({"a": "keras", "c": "kexp"}[variant])
            return {"per_second": found[speed], "first_step_seconds": found["first_step_seconds"],
                    "params": found.get("params"), "flops": found.get("flops_per_image")}

        return Prepared(cfg, ("a", "c"), run_task)
    cfg = compose([*kexp_overrides(case, epochs, tmp / name, log_dir), *extra])
    arrays = {"image": image_data, "text": text_data, "table": table_data}[case.kind](
        case, cfg, tmp / name)
    return Prepared(cfg, ("a", "b", "c"), lambda v: run_three_ways(v, case, cfg, arrays, epochs))


def compose(overrides: list[str]) -> Any:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    with initialize_config_module("kexp.conf", version_base="1.3"):
        return hydra_compose("train", overrides=overrides)


def kexp_overrides(case: Case, epochs: int, data_dir: Path, log_dir: Path) -> list[str]:
    """What a user types after `python -m kexp`; everything else stays at kexp's defaults."""
    data = {"image": ["data=npz", f"data.path={data_dir / 'data.npz'}"],
            "text": ["data=text_csv", f"data.path={data_dir / 'train.csv'}",
                     f"data.test_path={data_dir / 'test.csv'}"],
            "table": ["task=regression", "data=csv", f"data.path={data_dir / 'train.csv'}",
                      f"data.test_path={data_dir / 'test.csv'}", "data.target=y"]}[case.kind]
    return [f"model={case.model}", *data, *case.overrides, f"trainer.epochs={epochs}",
            "trainer.verbose=0", f"paths.log_dir={log_dir}"]


def rows_before_holdout(case: Case, fraction: float) -> int:
    """How many training rows leave exactly case.train_examples after kexp holds out
    `fraction` for validation (sklearn's rounding: ceil of the held-out share)."""
    n = case.train_examples
    return next(total for total in range(n, 2 * n + 10)
                if total - math.ceil(fraction * total) == n)


def kept_rows(case: Case, labels: Any, cfg: Any, stratify: bool = True) -> Any:
    """The indices (kept, held out) of the training rows after kexp's validation hold-out:
    exactly case.train_examples kept."""
    from kexp.data.sources.split import holdout

    kept, held = holdout(labels, float(cfg.data.val_fraction), cfg.trainer.seed,
                         "val_fraction", stratify=stratify)
    assert len(kept) == case.train_examples, (len(kept), case)
    return kept, held


def image_data(case: Case, cfg: Any, folder: Path) -> dict[str, Any]:
    """The npz kexp reads, and the very examples it trains and validates on, scaled as kexp's
    pipeline scales uint8 images."""
    import numpy as np

    total = rows_before_holdout(case, float(cfg.data.val_fraction))
    rng = np.random.default_rng(DATA_SEED)
    x = rng.integers(0, 256, (total + TEST_EXAMPLES, *case.input_shape), dtype=np.uint8)
    y = rng.permutation(np.arange(total + TEST_EXAMPLES) % CLASSES)  # every class present
    np.savez(folder / "data.npz", x_train=x[:total], y_train=y[:total],
             x_test=x[total:], y_test=y[total:])
    kept, held = kept_rows(case, y[:total], cfg)
    scaled = x[:total].astype("float32") / 255.0
    return {"train": (scaled[kept], y[kept]), "val": (scaled[held], y[held])}


def text_data(case: Case, cfg: Any, folder: Path) -> dict[str, Any]:
    """A CSV of texts (1.5 x sequence_length words of a WORDS-word vocabulary, so kexp cuts
    them as it would long reviews) for kexp, and the same texts in memory for a and b, which
    turn them into ids inside their clock (`vectorized`), as a user's script would."""
    import numpy as np
    import pandas as pd

    total = rows_before_holdout(case, float(cfg.data.val_fraction))
    rng = np.random.default_rng(DATA_SEED)
    words = np.array([f"w{i}" for i in range(WORDS)])
    length = int(cfg.data.sequence_length)
    texts = np.array([" ".join(rng.choice(words, length * 3 // 2))
                      for _ in range(total + TEST_EXAMPLES)])
    y = rng.permutation(np.arange(total + TEST_EXAMPLES) % CLASSES)
    pd.DataFrame({"text": texts[:total], "label": y[:total]}).to_csv(folder / "train.csv",
                                                                      index=False)
    pd.DataFrame({"text": texts[total:], "label": y[total:]}).to_csv(folder / "test.csv",
                                                                      index=False)
    kept, held = kept_rows(case, y[:total], cfg)
    return {"texts": {"train": (texts[:total][kept], y[kept]),
                      "val": (texts[:total][held], y[held])}}


def vectorized(cfg: Any, texts: dict[str, Any]) -> dict[str, Any]:
    """What a user writes for text: Keras' TextVectorization adapted on the training texts,
    then the ids of both splits; `vocab_size` for the model."""
    import keras
    import numpy as np

    vectorize = keras.layers.TextVectorization(
        max_tokens=int(cfg.data.max_tokens), output_sequence_length=int(cfg.data.sequence_length),
        standardize="lower_and_strip_punctuation")
    vectorize.adapt(texts["train"][0], batch_size=256)
    ids = {name: (np.asarray(vectorize(x)), y) for name, (x, y) in texts.items()}
    return {**ids, "vocab_size": vectorize.vocabulary_size()}


def table_data(case: Case, cfg: Any, folder: Path) -> dict[str, Any]:
    """A numeric CSV table (TABLE_FEATURES columns, a target y that is a noisy linear function
    of them) for kexp, and for a and b the same rows standardized with the training split's
    mean and std, features and target alike, as a user would."""
    import numpy as np
    import pandas as pd

    total = rows_before_holdout(case, float(cfg.data.val_fraction))
    rng = np.random.default_rng(DATA_SEED)
    x = rng.normal(3.0, 2.0, (total + TEST_EXAMPLES, case.input_shape[0])).astype("float32")
    y = (x @ rng.normal(size=case.input_shape[0]) + rng.normal(size=len(x))).astype("float32")
    columns = [f"x{i}" for i in range(case.input_shape[0])]
    for rows, file in ((slice(0, total), "train.csv"), (slice(total, None), "test.csv")):
        frame = pd.DataFrame(x[rows], columns=columns)
        frame["y"] = y[rows]
        frame.to_csv(folder / file, index=False)
    kept, held = kept_rows(case, y[:total], cfg, stratify=False)
    mean, std = x[kept].mean(0), x[kept].std(0)
    y_mean, y_std = y[kept].mean(), y[kept].std()

    def scaled(rows: Any) -> tuple[Any, Any]:
        return (x[rows] - mean) / std, (y[rows] - y_mean) / y_std

    return {"train": scaled(kept), "val": scaled(held)}


def run_three_ways(variant: str, case: Case, cfg: Any, arrays: dict[str, Any],
                   epochs: int) -> dict[str, Any]:
    import copy
    import gc

    import keras

    gc.collect()
    if variant == "c":
        from kexp.recipe import train

        metrics = train(copy.deepcopy(cfg))  # train() fills in paths.output_dir
        return {"per_second": metrics["examples_per_second"],
                "first_step_seconds": metrics["seconds_to_first_step"],
                "params": int(metrics["params"]), "flops": metrics["flops"]}
    keras.backend.clear_session()  # as kexp's prepare() does
    keras.utils.set_random_seed(cfg.trainer.seed)
    return fit_by_hand(variant, case, cfg, arrays, epochs)


def handwritten_model(case: Case, cfg: Any, arrays: dict[str, Any]) -> Any:
    """The same network, compiled as a user compiles it for the task."""
    import keras

    from kexp import models

    shape = arrays["train"][0].shape[1:]
    if case.kind == "table":
        features = models.backbone(cfg.model, shape)
        model = keras.Model(features.input, keras.layers.Dense(1)(features.output))
        model.compile(optimizer=keras.optimizers.Adam(cfg.optimizer.lr), loss="mse",
                      metrics=["mae"])
        return model
    model = models.build(cfg.model, shape, CLASSES, vocab_size=arrays.get("vocab_size"))
    model.compile(optimizer=keras.optimizers.Adam(cfg.optimizer.lr),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def fit_by_hand(variant: str, case: Case, cfg: Any, arrays: dict[str, Any],
                epochs: int) -> dict[str, Any]:
    """What a user writes: the same model, optimizer, batch size and epochs, and the same
    validation examples each epoch (their pass is outside the timed part, as in c)."""
    import time

    import tensorflow as tf

    from kexp.training.throughput import Throughput

    started = time.perf_counter()
    if "texts" in arrays:  # the texts to ids, inside the clock as kexp's reading is in c's
        arrays = vectorized(cfg, arrays["texts"])
    (x, y), (x_val, y_val) = arrays["train"], arrays["val"]
    model = handwritten_model(case, cfg, arrays)
    throughput = Throughput(len(x), started=started)
    if variant == "a":
        model.fit(x, y, batch_size=BATCH_SIZE, epochs=epochs, validation_data=(x_val, y_val),
                  callbacks=[throughput], verbose=0)
    else:
        train = (tf.data.Dataset.from_tensor_slices((x, y)).cache().shuffle(len(x))
                 .batch(BATCH_SIZE).prefetch(tf.data.AUTOTUNE))
        val = (tf.data.Dataset.from_tensor_slices((x_val, y_val)).batch(BATCH_SIZE).cache()
               .prefetch(tf.data.AUTOTUNE))
        model.fit(train, epochs=epochs, validation_data=val, callbacks=[throughput], verbose=0,
                  shuffle=False)  # the dataset shuffles itself
    return {"per_second": round(throughput.per_second, 1),
            "first_step_seconds": round(throughput.first_step_seconds or 0.0, 2),
            "params": int(model.count_params())}
