"""A pointer network's half of the pipeline: generated point sets -> pointer ids -> batches.

The answer of a set of k points is a sequence of its input positions. As ids (what the model
reads and writes, and what kexp.decoding feeds back): 0 pads, 1 is START, 2 is END and 3 + i
points at input point i, so the logits have k + 3 columns (padding and START never
predicted).

Each batch is ((points, decoder input), decoder target, weight), as kexp.data.pairs batches
sentence pairs: the points (B, k, d) float32; the answer behind START, [START] p1 .. pn
(teacher forcing: the decoder reads the point it pointed at last); the answer followed by
END, p1 .. pn [END]; and a float32 weight (B, k + 1) that is 1 on those n + 1 positions and 0
on the padding, so neither the loss nor the accuracy counts a padded position. Every
decoder sequence is k + 1 long (an answer holds each point at most once). The training
batches come from kexp.data.stages.epoch_batches, so a resumed run replays the same order.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from omegaconf import DictConfig

from kexp.data import keys
from kexp.data.bundle import DataBundle, DataSpec
from kexp.data.corpus import fingerprint
from kexp.data.raw import PointSet, RawPoints
from kexp.data.stages import epoch_batches
from kexp.errors import KexpError

PAD_ID, START_ID, END_ID = 0, 1, 2
FIRST_POINT = 3  # the id of input point 0


def build(raw: RawPoints, cfg: DictConfig, global_batch_size: int, seed: int | None
          ) -> DataBundle:
    """The batched point sets of `raw`'s splits."""
    splits = {"train": raw.train, "val": raw.val, "test": raw.test}
    for name, split in splits.items():
        if len(split) == 0:
            raise KexpError(f"data: the {name} split holds no point sets")
    _, points, dims = raw.train.points.shape
    length = points + 1
    arrays = {name: arrays_of(split, length) for name, split in splits.items()}

    def dataset(name: str) -> tf.data.Dataset:
        x, tin, tout, w = arrays[name]
        return tf.data.Dataset.from_tensor_slices(((x, tin), tout, w))

    train, epoch = epoch_batches(dataset("train"), len(raw.train), len(raw.train),
                                 global_batch_size, seed)
    use_fingerprint = keys.boolean(cfg, "fingerprint", True)
    spec = DataSpec(
        name=str(keys.get(cfg, "name", None) or keys.get(cfg, "source", "points")),
        input_shape=(points, dims), num_classes=0, class_names=[],
        num_train=len(raw.train), num_val=len(raw.val), num_test=len(raw.test),
        version=raw.version,
        fingerprint=_fingerprint(arrays) if use_fingerprint else None,
        pointer_length=length)
    return DataBundle(
        train=train.prefetch(tf.data.AUTOTUNE),
        val=dataset("val").batch(global_batch_size).prefetch(tf.data.AUTOTUNE),
        test=dataset("test").batch(global_batch_size).prefetch(tf.data.AUTOTUNE),
        spec=spec, epoch=epoch)


def arrays_of(split: PointSet, length: int
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(points, decoder input ids, decoder target ids, weight) of a split."""
    n = len(split)
    tin = np.zeros((n, length), np.int32)
    tout = np.zeros((n, length), np.int32)
    for i, order in enumerate(split.orders):
        ids = [FIRST_POINT + p for p in order]
        tin[i, :len(ids) + 1] = [START_ID, *ids]
        tout[i, :len(ids) + 1] = [*ids, END_ID]
    return (np.asarray(split.points, np.float32), tin, tout,
            (tout != PAD_ID).astype(np.float32))


def answer(ids: np.ndarray) -> list[int]:
    """The input positions a row of pointer ids points at, up to its first END."""
    out = []
    for i in (int(i) for i in ids):
        if i == END_ID or i == PAD_ID:
            break
        if i >= FIRST_POINT:
            out.append(i - FIRST_POINT)
    return out


def _fingerprint(arrays: dict[str, tuple[np.ndarray, ...]]) -> str:
    """fingerprint of the target ids and of the points' float32 bits, every split."""
    parts = []
    for name in ("train", "val", "test"):
        x, _, tout, _ = arrays[name]
        parts += [np.ascontiguousarray(x, np.float32).view(np.int32), tout]
    return fingerprint(parts)
