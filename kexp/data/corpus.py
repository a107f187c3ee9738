"""A language model's half of the pipeline: a corpus's text -> windows of token ids.

Training: each epoch draws `epoch_tokens // context` windows at random offsets, seeded by
(seed, epoch) through the DataBundle's epoch variable (as kexp.data.stages.epoch_batches
keys its shuffle), so a resumed run reads what the uninterrupted one did; x is a window of
`context` ids, y the same shifted by one. Validation and test: windows in order that predict
every target token of the split once; the last window overlaps the one before it and
weighs only the targets it adds (the weights are the third element of each batch).
"""

from __future__ import annotations

import hashlib
import math
import random

import numpy as np
import tensorflow as tf
from omegaconf import DictConfig

from kexp.data import keys
from kexp.data.bundle import DataBundle, DataSpec
from kexp.data.raw import RawCorpus
from kexp.data.tokenizer import PUNCTUATION, UNITS, Tokenizer
from kexp.errors import KexpError


def build(raw: RawCorpus, cfg: DictConfig, global_batch_size: int, seed: int | None
          ) -> DataBundle:
    """The batched windows of `raw`'s splits that `cfg` (the `data` group) describes."""
    unit = keys.get(cfg, "tokens", "char")
    if unit not in UNITS:
        raise KexpError(f"data.tokens: {unit!r} is not valid; expected char or word")
    punctuation = keys.get(cfg, "punctuation", "split")
    if punctuation not in PUNCTUATION:
        raise KexpError(f"data.punctuation: {punctuation!r} is not valid; expected "
                        f"{', '.join(PUNCTUATION)}")
    context = keys.positive_int(cfg, "context")
    max_tokens = keys.get(cfg, "max_tokens", None)
    tokenizer = Tokenizer.fit(raw.train, unit, keys.boolean(cfg, "lowercase", False),
                              punctuation, max_tokens)
    ids = {name: np.asarray(tokenizer.encode(text), np.int32)
           for name, text in (("train", raw.train), ("val", raw.val), ("test", raw.test))}
    for name, split in ids.items():
        if len(split) < context + 1:
            raise KexpError(f"data.context: {context} tokens and the next one need "
                            f"{context + 1}, but the {name} split holds {len(split)}; use a "
                            f"longer text, a smaller data.context"
                            + ("" if name == "train" else f" or a larger data.{name}_fraction"))
    epoch_tokens = keys.positive_int(cfg, "epoch_tokens", None, allow_none=True)
    windows = max(1, (epoch_tokens or len(ids["train"])) // context)
    train, epoch = _training_windows(ids["train"], context, windows, global_batch_size, seed)
    val, test = (_ordered_windows(ids[name], context) for name in ("val", "test"))
    read = None
    if keys.boolean(cfg, "fingerprint", True):
        digest = hashlib.sha256()
        for split in ids.values():
            digest.update(split.tobytes() + b"|")
        read = digest.hexdigest()[:16]
    spec = DataSpec(
        name=str(keys.get(cfg, "name", None) or keys.get(cfg, "source", "corpus")),
        input_shape=(context,), num_classes=0, class_names=[], num_train=windows,
        num_val=len(val[0]), num_test=len(test[0]), vocab_size=tokenizer.vocab_size,
        version=raw.version, fingerprint=read, token_unit=unit,
        num_tokens=tuple(len(ids[name]) for name in ("train", "val", "test")))

    def batched(split: tuple[np.ndarray, ...]) -> tf.data.Dataset:
        return tf.data.Dataset.from_tensor_slices(split).batch(global_batch_size).prefetch(
            tf.data.AUTOTUNE)

    return DataBundle(train=train.prefetch(tf.data.AUTOTUNE), val=batched(val),
                      test=batched(test), spec=spec, epoch=epoch, tokenizer=tokenizer)


def _training_windows(ids: np.ndarray, context: int, windows: int, batch_size: int,
                      seed: int | None) -> tuple[tf.data.Dataset, tf.Variable]:
    base = random.randrange(2**31) if seed is None else int(seed) % 2**31
    epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="data_epoch")
    tokens = tf.constant(ids)
    steps = tf.range(context + 1, dtype=tf.int64)

    def one_epoch(_: tf.Tensor) -> tf.data.Dataset:
        offsets = tf.random.stateless_uniform(
            [windows], seed=tf.stack([tf.constant(base, tf.int64), epoch.read_value()]),
            minval=0, maxval=len(ids) - context, dtype=tf.int64)

        def gather(batch: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            rows = tf.gather(tokens, batch[:, None] + steps[None, :])
            return rows[:, :-1], rows[:, 1:]

        return tf.data.Dataset.from_tensor_slices(offsets).batch(batch_size).map(gather)

    batches = tf.data.Dataset.range(1).flat_map(one_epoch)
    return batches.apply(tf.data.experimental.assert_cardinality(
        math.ceil(windows / batch_size))), epoch


def _ordered_windows(ids: np.ndarray, context: int
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, y, w): windows at 0, context, 2 context, ... and a last one ending at the end,
    w 0 on the targets an earlier window predicted; sum(w) == len(ids) - 1."""
    targets = len(ids) - 1
    starts = list(range(0, targets - context + 1, context))
    weights = [np.ones(context, np.float32) for _ in starts]
    covered = starts[-1] + context
    if covered < targets:
        last = np.zeros(context, np.float32)
        last[context - (targets - covered):] = 1.0
        starts.append(targets - context)
        weights.append(last)
    x = np.stack([ids[s:s + context] for s in starts])
    y = np.stack([ids[s + 1:s + context + 1] for s in starts])
    return x, y, np.stack(weights)
