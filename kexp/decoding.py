"""Sampling text from a causal model: the next token from logits (greedy, temperature,
top-k, top-p), a batched decoding loop compiled once, and beam search in the same loop.

The loop keeps a window of the model's `context` tokens per sample. While the window is
not full, the tokens sit at its start and the rest is padding; the model is causal, so the
logits at the last real position ignore what follows, and the window keeps one shape for
every prompt length: the loop is traced once per batch size, not once per token or prompt.
A full window drops its oldest token. Every task that writes text (language models,
translation) decodes through this module.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

PAD_ID = 0  # never sampled: it is the padding of the window, not a token of the text


def next_tokens(logits: tf.Tensor, temperature: tf.Tensor, top_k: tf.Tensor, top_p: tf.Tensor,
                seed: tf.Tensor) -> tf.Tensor:
    """One token id per row of `logits` (n, vocab).

    temperature 0 is greedy (argmax); otherwise softmax(logits / temperature) restricted to
    the `top_k` most likely tokens (0: all) and then to the smallest set whose probability
    reaches `top_p` (1: all; Holtzman et al., 2020), drawn with the stateless `seed` (2,).
    Ties at the k-th logit are kept. The padding id is never drawn.
    """
    logits = tf.cast(logits, tf.float32)
    vocab = tf.shape(logits)[-1]
    logits = tf.where(tf.range(vocab)[None, :] == PAD_ID, -np.inf, logits)
    greedy = tf.argmax(logits, axis=-1, output_type=tf.int32)
    scaled = logits / tf.maximum(tf.cast(temperature, tf.float32), 1e-6)
    ranked = tf.sort(scaled, axis=-1, direction="DESCENDING")
    k = tf.where(top_k > 0, tf.minimum(tf.cast(top_k, tf.int32), vocab), vocab)
    ranked = tf.where(tf.range(vocab)[None, :] < k, ranked, -np.inf)
    # top-p over what top-k kept: a token stays while the mass before it is below top_p
    before = tf.cumsum(tf.nn.softmax(ranked, axis=-1), axis=-1, exclusive=True)
    kept = tf.logical_and(before < tf.cast(top_p, tf.float32), ranked > -np.inf)
    kept = tf.logical_or(kept, tf.range(vocab)[None, :] == 0)  # the most likely always stays
    floor = tf.reduce_min(tf.where(kept, ranked, np.inf), axis=-1, keepdims=True)
    scaled = tf.where(scaled < floor, -np.inf, scaled)
    drawn = tf.cast(tf.random.stateless_categorical(scaled, 1, seed)[:, 0], tf.int32)
    return tf.where(tf.cast(temperature, tf.float32) > 0, drawn, greedy)


@dataclass
class Decoded:
    """What a decoding call produced: the new ids (n, length) and how fast."""

    ids: np.ndarray
    seconds: float

    @property
    def tokens_per_second(self) -> float:
        return self.ids.size / self.seconds if self.seconds > 0 else float("nan")


class Decoder:
    """Batched sampling from `model`, a causal model from (n, context) int32 ids to
    (n, context, vocab) logits, or an encoder-decoder from [(n, source) ids, (n, context)
    ids] (`source=` in the call: a translation's decoder window, conditioned on the source);
    the loop is one tf.function over tf.while_loop."""

    def __init__(self, model: keras.Model, context: int) -> None:
        self.model = model
        self.context = int(context)
        self._loop = tf.function(self._decode, reduce_retracing=True)
        self._beam_loop = tf.function(self._beam_search, reduce_retracing=True)

    @property
    def traces(self) -> int:
        """How many times the loops were traced (one per batch size and kind of search)."""
        return (self._loop.experimental_get_tracing_count()
                + self._beam_loop.experimental_get_tracing_count())

    def __call__(self, prompt: list[int] | np.ndarray, n: int = 1, length: int = 100,
                 temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                 seed: int = 0, source: np.ndarray | None = None) -> Decoded:
        """`length` new tokens after `prompt` for each of `n` samples: one list of ids for
        all, or an (n, p) array of one prompt per sample. Only a prompt's last `context`
        ids are read; it must hold at least one. `source`: (n, source length) ids an
        encoder-decoder reads beside the window."""
        buffer, filled = self._window(prompt, n)
        started = time.perf_counter()
        ids = self._loop(tf.constant(buffer), tf.constant(filled, tf.int32),
                         tf.constant(int(length), tf.int32),
                         tf.constant(float(temperature), tf.float32),
                         tf.constant(int(top_k), tf.int32), tf.constant(float(top_p), tf.float32),
                         tf.constant(int(seed), tf.int32),
                         None if source is None else tf.constant(np.asarray(source))).numpy()
        return Decoded(ids, time.perf_counter() - started)

    def beam(self, prompt: list[int] | np.ndarray, n: int = 1, length: int = 100,
             beam: int = 4, length_penalty: float = 0.6, end_id: int | None = None,
             source: np.ndarray | None = None) -> Decoded:
        """Beam search: for each of `n` prompts (and sources), the most likely continuation
        of at most `length` tokens that `beam` hypotheses found. A hypothesis ends at
        `end_id` (kept in the output, padding after it); None: none ends early. Finished
        hypotheses are ranked by log-probability / ((5 + length) / 6) ** length_penalty
        (Wu et al., 2016; 0: plain log-probability). beam 1 is greedy decoding."""
        if int(beam) < 1:
            raise ValueError(f"beam: {beam!r} is not valid; expected an integer >= 1")
        buffer, filled = self._window(prompt, n)
        started = time.perf_counter()
        ids = self._beam_loop(tf.constant(buffer), tf.constant(filled, tf.int32),
                              tf.constant(int(length), tf.int32), tf.constant(int(beam), tf.int32),
                              tf.constant(float(length_penalty), tf.float32),
                              tf.constant(-1 if end_id is None else int(end_id), tf.int32),
                              None if source is None else tf.constant(np.asarray(source))).numpy()
        return Decoded(ids, time.perf_counter() - started)

    def _window(self, prompt: list[int] | np.ndarray, n: int) -> tuple[np.ndarray, int]:
        """The (n, context) start windows of a prompt and how many of their ids are real."""
        prompts = np.asarray(prompt, np.int32).reshape(-1, np.shape(prompt)[-1])
        if prompts.shape[-1] == 0:
            raise ValueError("decoding needs a prompt of at least one token")
        window = prompts[:, -self.context:]
        buffer = np.zeros((n, self.context), np.int32)
        buffer[:, :window.shape[1]] = window
        return buffer, window.shape[1]

    def _advance(self, buffer, filled, token):
        """The windows after `token` (one per row) is written at position `filled`."""
        shifted = tf.concat([buffer[:, 1:], token[:, None]], axis=1)
        placed = tf.where(tf.range(self.context)[None, :] == filled, token[:, None], buffer)
        return tf.where(filled >= self.context, shifted, placed)

    def _beam_search(self, buffer, filled, length, beam, alpha, end_id, source=None):
        n = tf.shape(buffer)[0]
        # every hypothesis is one row of the model's batch: (n * beam, ...)
        buffer = tf.repeat(buffer, beam, axis=0)
        if source is not None:
            source = tf.repeat(source, beam, axis=0)
        # all beams start equal: only the first may expand at step 0, or beam copies of the
        # same hypothesis would fill the beam
        scores = tf.tile(tf.concat([[0.0], tf.fill([beam - 1], -np.inf)], 0)[None, :], [n, 1])
        finished = tf.zeros([n, beam], tf.bool)
        lengths = tf.zeros([n, beam], tf.int32)
        history = tf.zeros([n, beam, length], tf.int32)

        def step(i, buffer, filled, scores, finished, lengths, history):
            logits = self.model(buffer if source is None else [source, buffer], training=False)
            logp = tf.nn.log_softmax(tf.cast(logits[:, filled - 1, :], tf.float32), axis=-1)
            vocab = tf.shape(logp)[-1]
            is_pad = tf.range(vocab)[None, None, :] == PAD_ID
            logp = tf.where(is_pad, -np.inf, tf.reshape(logp, [n, beam, vocab]))
            # a finished hypothesis goes on with padding at no cost, keeping its score
            logp = tf.where(finished[:, :, None], tf.where(is_pad, 0.0, -np.inf), logp)
            best, index = tf.math.top_k(tf.reshape(scores[:, :, None] + logp, [n, -1]), beam)
            parent, token = index // vocab, index % vocab

            def follow(t):  # each survivor's parent's state
                return tf.gather(t, parent, batch_dims=1)

            was_finished = follow(finished)
            lengths = follow(lengths) + tf.cast(~was_finished, tf.int32)
            finished = was_finished | (token == end_id)
            history = tf.where(tf.range(length)[None, None, :] == i, token[:, :, None],
                               follow(history))
            rows = tf.reshape(follow(tf.reshape(buffer, [n, beam, self.context])),
                              [n * beam, self.context])
            buffer = self._advance(rows, filled, tf.reshape(token, [-1]))
            return (i + 1, buffer, tf.minimum(filled + 1, self.context), best, finished,
                    lengths, history)

        def running(i, buffer, filled, scores, finished, *_):
            return tf.logical_and(i < length, ~tf.reduce_all(finished))

        _, _, _, scores, _, lengths, history = tf.while_loop(
            running, step, (tf.constant(0), buffer, filled, scores, finished, lengths, history),
            # n and beam are whatever the call gives; only the window's width is fixed
            shape_invariants=(tf.TensorShape([]), tf.TensorShape([None, self.context]),
                              tf.TensorShape([]), *[tf.TensorShape([None, None])] * 3,
                              tf.TensorShape([None, None, None])))
        penalty = tf.pow((5.0 + tf.cast(lengths, tf.float32)) / 6.0, alpha)
        chosen = tf.argmax(scores / penalty, axis=1, output_type=tf.int32)
        return tf.gather(history, chosen, batch_dims=1)  # (n, length)

    def _decode(self, buffer, filled, length, temperature, top_k, top_p, seed, source=None):
        steps = tf.TensorArray(tf.int32, size=length)

        def step(i, buffer, filled, steps):
            logits = self.model(buffer if source is None else [source, buffer], training=False)
            token = next_tokens(logits[:, filled - 1, :], temperature, top_k, top_p,
                                tf.stack([seed, i]))
            buffer = self._advance(buffer, filled, token)
            return i + 1, buffer, tf.minimum(filled + 1, self.context), steps.write(i, token)

        _, _, _, steps = tf.while_loop(lambda i, *_: i < length, step,
                                       (tf.constant(0), buffer, filled, steps))
        return tf.transpose(steps.stack())  # (n, length)
