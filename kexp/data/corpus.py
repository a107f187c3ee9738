"""A language model's half of the pipeline: a corpus's text -> windows of token ids.

fit the Tokenizer on train -> encode the three splits -> windows, gathered in TF -> batch
-> prefetch

Training: each epoch draws `epoch_tokens // context` windows at offsets uniform in
[0, n_train - context - 1], from a stateless random op keyed by (seed, epoch) as
kexp.data.stages.epoch_batches keys its shuffle (the epoch read from the DataBundle's `epoch`
variable, which the DataEpoch callback sets at each epoch's start), so epoch k draws the same
windows whatever ran before it and a resumed run reads what the uninterrupted one did. x is
`context` ids, y the same window shifted by one token.

Validation and test: windows in order, at 0, context, 2 context, ..., that predict every target
token of the split (ids 1..n-1) exactly once; the last window is the split's final
context + 1 tokens and weighs only the targets the window before it did not cover. Their
batches are (x, y, w), w float32 (B, context): sum(w) over a split is its n - 1 tokens.
"""

from __future__ import annotations

import hashlib
import math
import random

import numpy as np
import tensorflow as tf
from omegaconf import DictConfig

from kexp.config import check
from kexp.data import keys
from kexp.data.bundle import DataBundle, DataSpec
from kexp.data.raw import RawCorpus
from kexp.data.tokenizer import Tokenizer
from kexp.errors import KexpError

# which key makes a held-out split longer (data=text_file; tiny_shakespeare's are fixed)
_FRACTION_KEYS = {"val": "val_fraction", "test": "test_fraction"}


def build(raw: RawCorpus, cfg: DictConfig, global_batch_size: int, seed: int | None
          ) -> DataBundle:
    """The batched windows of `raw`'s splits that `cfg` (the `data` group) describes."""
    unit = check("data.tokens", keys.get(cfg, "tokens", "char"))
    context = keys.positive_int(cfg, "context")
    epoch_tokens = check("data.epoch_tokens", keys.get(cfg, "epoch_tokens", None),
                         wording="must be")
    lowercase = keys.boolean(cfg, "lowercase", False)
    punctuation = check("data.punctuation", keys.get(cfg, "punctuation", "split"))
    max_tokens = check("data.max_tokens", keys.get(cfg, "max_tokens", None), wording="must be")
    use_fingerprint = keys.boolean(cfg, "fingerprint", True)

    texts = {"train": raw.train, "val": raw.val, "test": raw.test}
    if not any(texts.values()):
        raise KexpError("data: the corpus is empty (no text in the train, val or test split)")
    tokenizer = Tokenizer.fit(raw.train, unit, lowercase, punctuation,
                              None if max_tokens is None else int(max_tokens))
    # encoded on the CPU once: a 1 MB text is ~0.1 s of Python
    ids = {name: np.asarray(tokenizer.encode(text), np.int32) for name, text in texts.items()}
    _check_lengths(cfg, ids, context, unit)

    n_train = len(ids["train"])
    windows = max(1, (n_train if epoch_tokens is None else int(epoch_tokens)) // context)
    train, epoch = training_windows(ids["train"], context, windows, global_batch_size, seed)
    val, num_val = ordered_windows(ids["val"], context, global_batch_size)
    test, num_test = ordered_windows(ids["test"], context, global_batch_size)
    spec = DataSpec(
        name=str(keys.get(cfg, "name", None) or keys.get(cfg, "source", "corpus")),
        input_shape=(context,),
        num_classes=0,
        class_names=[],
        num_train=windows,
        num_val=num_val,
        num_test=num_test,
        vocab_size=tokenizer.vocab_size,
        version=raw.version,
        fingerprint=fingerprint(ids.values()) if use_fingerprint else None,
        token_unit=unit,
        num_tokens=(n_train, len(ids["val"]), len(ids["test"])),
    )
    return DataBundle(train=train, val=val, test=test, spec=spec, vocabulary=None, epoch=epoch,
                      tokenizer=tokenizer)


def _check_lengths(cfg: DictConfig, ids: dict[str, np.ndarray], context: int, unit: str
                   ) -> None:
    """Every split holds a window and its next token (context + 1 tokens)."""
    need = context + 1
    n = len(ids["train"])
    if n < need:
        raise KexpError(f"data.context: {context} needs {need} tokens in the training split, "
                        f"which holds {n} {unit} tokens; lower data.context or use a longer "
                        f"text")
    for name in ("val", "test"):
        n = len(ids[name])
        if n < need:
            fraction = _FRACTION_KEYS[name]
            larger = (f"raise data.{fraction} or " if keys.get(cfg, fraction, None) is not None
                      else "")
            raise KexpError(f"data: the {name} split holds {n} {unit} tokens, fewer than "
                            f"data.context + 1 = {need}; {larger}lower data.context")


def training_windows(ids: np.ndarray, context: int, windows: int, batch_size: int,
                     seed: int | None) -> tuple[tf.data.Dataset, tf.Variable]:
    """`windows` random (x, y) windows of `ids` per epoch, batched; the variable is the epoch
    they are drawn for (seed None: a random base seed)."""
    base = random.randrange(2**31) if seed is None else int(seed) % 2**31
    epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="data_epoch")
    tokens = tf.constant(ids, tf.int32)
    steps = tf.range(context + 1, dtype=tf.int64)[tf.newaxis, :]
    highest = len(ids) - context - 1  # the last offset whose window has a next token

    def gather(offsets: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        rows = tf.gather(tokens, offsets[:, tf.newaxis] + steps)  # (B, context + 1)
        return rows[:, :-1], rows[:, 1:]

    def one_epoch(_: tf.Tensor) -> tf.data.Dataset:
        epoch_seed = base * 1_000_003 + epoch.read_value()  # as stages.epoch_batches
        offsets = tf.random.stateless_uniform(
            [windows], seed=tf.stack([epoch_seed, tf.constant(0, tf.int64)]),
            minval=0, maxval=highest + 1, dtype=tf.int64)
        return tf.data.Dataset.from_tensor_slices(offsets).batch(batch_size).map(gather)

    batches = tf.data.Dataset.range(1).flat_map(one_epoch)
    # flat_map hides the size; Keras needs it for its steps per epoch
    batches = batches.apply(tf.data.experimental.assert_cardinality(
        math.ceil(windows / batch_size)))
    return batches.prefetch(tf.data.AUTOTUNE), epoch


def window_starts(n: int, context: int) -> tuple[np.ndarray, np.ndarray]:
    """Starts and (windows, context) float32 weights of the in-order windows of a split of
    `n` >= context + 1 tokens: each target 1..n-1 has weight 1 in exactly one window."""
    starts = list(range(0, n - context, context))  # s + context + 1 <= n
    weights = np.ones((len(starts), context), np.float32)
    covered = starts[-1] + context  # the last target the regular windows predict
    if covered < n - 1:
        last = np.zeros((1, context), np.float32)
        last[0, context - (n - 1 - covered):] = 1.0
        starts.append(n - context - 1)
        weights = np.concatenate([weights, last])
    return np.asarray(starts, np.int64), weights


def ordered_windows(ids: np.ndarray, context: int, batch_size: int
                    ) -> tuple[tf.data.Dataset, int]:
    """(x, y, w) batches that read the split once, in order; and how many windows it has."""
    starts, weights = window_starts(len(ids), context)
    tokens = tf.constant(ids, tf.int32)
    steps = tf.range(context + 1, dtype=tf.int64)[tf.newaxis, :]

    def gather(offsets: tf.Tensor, w: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        rows = tf.gather(tokens, offsets[:, tf.newaxis] + steps)
        return rows[:, :-1], rows[:, 1:], w

    ds = tf.data.Dataset.from_tensor_slices((starts, weights)).batch(batch_size).map(gather)
    return ds.prefetch(tf.data.AUTOTUNE), len(starts)


def fingerprint(splits) -> str:
    """SHA-256 (first 16 hex digits) of the train, val and test id arrays."""
    digest = hashlib.sha256()
    for split in splits:
        digest.update(np.ascontiguousarray(split, np.int32).tobytes())
        digest.update(b"|")  # where a split ends
    return digest.hexdigest()[:16]
