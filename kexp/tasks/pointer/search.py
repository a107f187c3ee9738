"""Decoding a pointer network's answers through kexp.decoding's loop, optionally never
pointing at a point twice.

kexp.decoding.Decoder calls its model on [source, window] and reads the logits at the last
written position; `NoRepeats` is such a model around a pointer network, which sets the
logits of every point already in the window to -1e9 first. It is a wrapper, not a change
to the shared loop: the loop knows nothing of pointers. An answer of a set of k points then
holds each at most once, and after k points only END is left.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from kexp.data.points import FIRST_POINT, START_ID
from kexp.models.pointer_net import NEVER


class NoRepeats:
    """`model` (points, pointer ids) -> logits, with the logits at position t of every point
    named by the ids at positions 0..t set to -1e9 (so it is never pointed at again)."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def __call__(self, inputs, training: bool = False):
        points, ids = inputs
        logits = self.model([points, ids], training=training)
        width = tf.shape(logits)[-1]
        chosen = tf.cumsum(tf.one_hot(ids, width, dtype=tf.float32), axis=1) > 0
        chosen = tf.logical_and(chosen, tf.range(width)[None, None, :] >= FIRST_POINT)
        return tf.where(chosen, tf.constant(NEVER, logits.dtype), logits)

    def __getattr__(self, name: str) -> Any:  # anything else the loop asks of the model
        return getattr(self.model, name)


def decode(model: Any, test: tf.data.Dataset, length: int, no_repeats: bool = True
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Greedy answers of every example of the batched `test` split: (points (n, k, d),
    target ids (n, length), decoded ids (n, length), seconds spent decoding)."""
    from kexp.decoding import Decoder

    decoder = Decoder(NoRepeats(model) if no_repeats else model, length)
    points, targets, found, seconds = [], [], [], 0.0
    for (x, _), target, _ in test.as_numpy_iterator():
        decoded = decoder([START_ID], n=len(x), length=length, temperature=0.0, source=x)
        points.append(x)
        targets.append(target)
        found.append(decoded.ids)
        seconds += decoded.seconds
    return (np.concatenate(points), np.concatenate(targets), np.concatenate(found),
            seconds)
