"""Hierarchical Attention Network (Yang et al., 2016, "Hierarchical Attention Networks for
Document Classification"): a document read as sentences of words.

words -> Embedding -> bidirectional GRU -> word attention -> one vector per sentence
sentence vectors -> bidirectional GRU -> sentence attention -> one vector per document

Each attention is the paper's: `u_t = tanh(W h_t + b)`, `alpha_t = softmax_t(u_t . u_c)` with a
learned context vector `u_c` (u_w for words, u_s for sentences), and the weighted sum of the
`h_t`. The word encoder reads every sentence with the same weights: the sentences are folded
into the batch for it (what `TimeDistributed` does, in one pass instead of one per sentence).

Data contract: token ids (batch, sentences, sentence_length) from `data.sentences`
(kexp.data.text): id 0 pads a sentence at its end, and whole padding sentences (all 0) follow
a document's last sentence. Padding words and padding sentences get attention weight 0 and
never reach the output. `attention_weights(model, x)` gives both levels' weights (the
misclassified-examples page highlights with them: `highlighted_html`).
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import keras
import numpy as np
from keras import ops

from kexp.errors import KexpError
from kexp.models.layers import check_initializer, regularizer
from kexp.models.sequence import PaddingMask, check_positive, check_rate, check_vocab_size


def han(input_shape: Sequence[int | None], vocab_size: int, units: int = 50,
        embedding_dim: int = 100, attention_units: int = 100, dropout: float = 0.2,
        l1: float = 0.0, l2: float = 0.0, kernel_initializer: str = "glorot_uniform"
        ) -> keras.Model:
    """Builds a hierarchical attention network backbone (Yang et al., 2016).

    token ids -> Embedding -> BiGRU over each sentence's words -> word attention -> sentence
    vectors -> BiGRU over the sentences -> sentence attention -> document vector -> dropout.
    Masked throughout: a padding word or a padding sentence neither updates a GRU's state nor
    gets attention, so the output depends only on the document, not on how much padding
    follows its words and sentences. (An all-padding sentence or document is read as one
    padding step by the GRUs, as cuDNN requires, but still gets no attention.)

    Args:
        input_shape: `(sentences, sentence_length)` of the token-id inputs (`data.sentences`,
            `data.sentence_length`); None in either place takes any number.
        vocab_size: number of token ids (0 = padding, 1 = out-of-vocabulary).
        units: GRU units per direction at both levels (the paper's 50), so sentence and
            document vectors have 2 * units features.
        embedding_dim: size of the token embedding (the paper's 200, from word2vec; learned
            from scratch here).
        attention_units: width of both attention layers' hidden projection (`W` above; the
            paper's 100) and of their context vectors.
        dropout: dropout rate on the embeddings, the sentence vectors and the document vector.
        l1: L1 penalty on every kernel (the GRUs' input and recurrent kernels, the attention
            projections and the classifier; not the embedding).
        l2: L2 penalty on the same kernels.
        kernel_initializer: initializer of the GRUs' input kernels and the attention layers.

    Returns:
        A `keras.Model` named "han" whose output is one document vector per example (no head:
        the task adds its own, kexp.tasks). Its attention layers are `ContextAttention` layers
        named "word_attention" and "sentence_attention"; its token embedding is a
        `keras.layers.ReversibleEmbedding` named "embedding".
    """
    shape = tuple(input_shape)
    if len(shape) != 2:
        raise KexpError(f"model=han reads documents as sentences, token ids of shape "
                        f"(sentences, sentence_length), got input shape {shape}: set "
                        f"data.sentences (e.g. data.sentences=16) on a text data set")
    if any(n is not None and int(n) < 1 for n in shape):
        raise KexpError(f"model=han cannot take inputs of shape {shape}: data.sentences and "
                        f"data.sentence_length must be positive")
    sentences, words = (None if n is None else int(n) for n in shape)
    vocab_size = check_vocab_size(vocab_size)
    units = check_positive("units", units)
    embedding_dim = check_positive("embedding_dim", embedding_dim)
    attention_units = check_positive("attention_units", attention_units)
    dropout = check_rate("dropout", dropout)
    check_initializer(kernel_initializer)
    penalty = regularizer(l1, l2)

    def encoder(name: str) -> keras.layers.Bidirectional:
        return keras.layers.Bidirectional(keras.layers.GRU(
            units, return_sequences=True, kernel_initializer=kernel_initializer,
            kernel_regularizer=penalty, recurrent_regularizer=penalty, name=f"{name}_gru"),
            name=f"{name}_encoder")

    def attention(name: str) -> ContextAttention:
        return ContextAttention(attention_units, kernel_initializer=kernel_initializer,
                                kernel_regularizer=penalty, name=f"{name}_attention")

    ids = keras.Input(shape=(sentences, words), dtype="int32", name="token_ids")
    # words: every sentence of every document, one row each
    flat = FoldSentences(name="fold_sentences")(ids)
    word_mask = PaddingMask(name="word_mask")(flat)
    x = keras.layers.ReversibleEmbedding(vocab_size, embedding_dim, name="embedding")(flat)
    if dropout:
        x = keras.layers.Dropout(dropout, name="embedding_dropout")(x)
    x = encoder("word")(x, mask=PaddingMask(keep_first=True, name="word_rnn_mask")(flat))
    x, _ = attention("word")(x, mask=word_mask)
    x = UnfoldSentences(name="unfold_sentences")([x, ids])
    # sentences: a sentence is padding when all its ids are
    sentence_mask = SentenceMask(name="sentence_mask")(ids)
    if dropout:
        x = keras.layers.Dropout(dropout, name="sentence_dropout")(x)
    x = encoder("sentence")(x, mask=SentenceMask(keep_first=True,
                                                 name="sentence_rnn_mask")(ids))
    x, _ = attention("sentence")(x, mask=sentence_mask)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    return keras.Model(ids, x, name="han")  # features: the task adds its head (kexp.tasks)


han.reads_sentences = True  # input (sentences, sentence_length): tests and the zoo report ask


# --- layers -----------------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="kexp")
class ContextAttention(keras.layers.Layer):
    """(batch, steps, c) -> [(batch, c) weighted sum, (batch, steps) weights].

    Yang et al.'s attention with a learned context vector: `u_t = tanh(W h_t + b)`,
    `alpha_t = softmax_t(u_t . u_c)` over the unmasked steps (in float32); masked steps get
    weight 0, and a row with no unmasked step attends to nothing (a zero vector)."""

    def __init__(self, units: int, kernel_initializer="glorot_uniform",
                 kernel_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.supports_masking = True

    def build(self, input_shape):
        channels = int(input_shape[-1])
        self.kernel = self.add_weight(name="kernel", shape=(channels, self.units),
                                      initializer=self.kernel_initializer,
                                      regularizer=self.kernel_regularizer)
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")
        self.context = self.add_weight(name="context", shape=(self.units,),
                                       initializer=self.kernel_initializer,
                                       regularizer=self.kernel_regularizer)

    def call(self, values, mask=None):
        hidden = ops.tanh(ops.matmul(values, self.kernel) + self.bias)
        scores = ops.cast(ops.matmul(hidden, self.context), "float32")  # (batch, steps)
        if mask is None:
            mask = ops.ones(ops.shape(scores), dtype="bool")
        mask = ops.cast(mask, "bool")
        weights = ops.softmax(ops.where(mask, scores, -1e9), axis=-1)
        weights = weights * ops.cast(mask, "float32")
        pooled = ops.einsum("bt,btc->bc", ops.cast(weights, values.dtype), values)
        return pooled, weights

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2]), (input_shape[0], input_shape[1])

    def get_config(self):
        return {**super().get_config(), "units": self.units,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer)}


@keras.saving.register_keras_serializable(package="kexp")
class FoldSentences(keras.layers.Layer):
    """(batch, sentences, words) ids -> (batch * sentences, words): one row per sentence."""

    def call(self, ids):
        return ops.reshape(ids, (-1, ops.shape(ids)[2]))

    def compute_output_shape(self, input_shape):
        batch, sentences, words = input_shape
        rows = None if batch is None or sentences is None else batch * sentences
        return (rows, words)


@keras.saving.register_keras_serializable(package="kexp")
class UnfoldSentences(keras.layers.Layer):
    """[(batch * sentences, ...) values, (batch, sentences, words) ids] -> (batch, sentences,
    ...): FoldSentences undone."""

    def call(self, inputs):
        values, ids = inputs
        shape = ops.shape(ids)
        return ops.reshape(values, (shape[0], shape[1], *values.shape[1:]))

    def compute_output_shape(self, input_shape):
        values, ids = input_shape
        return (ids[0], ids[1], *values[1:])


@keras.saving.register_keras_serializable(package="kexp")
class SentenceMask(keras.layers.Layer):
    """(batch, sentences, words) ids -> (batch, sentences) bool, True for a sentence with a
    token. `keep_first=True` also keeps sentence 0 of an empty document (for cuDNN)."""

    def __init__(self, keep_first: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.keep_first = bool(keep_first)

    def call(self, ids):
        mask = ops.any(ops.not_equal(ids, 0), axis=-1)
        if self.keep_first:
            first = ops.arange(ops.shape(ids)[1])[None, :] == 0
            mask = ops.logical_or(mask, first)
        return mask

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:2])

    def get_config(self):
        return {**super().get_config(), "keep_first": self.keep_first}


# --- the attention of a trained model ---------------------------------------------------------


def attention_layers(model: keras.Model) -> tuple[ContextAttention, ContextAttention] | None:
    """The (word, sentence) ContextAttention layers of a HAN (its backbone's or the whole
    model's, which holds the same layers), found by type and name; None for other models."""
    found = {layer.name: layer for layer in model.layers if isinstance(layer, ContextAttention)}
    if {"word_attention", "sentence_attention"} <= set(found):
        return found["word_attention"], found["sentence_attention"]
    return None


def attention_weights(model: keras.Model, x: np.ndarray, batch_size: int = 64
                      ) -> tuple[np.ndarray, np.ndarray] | None:
    """Word weights (n, sentences, words) and sentence weights (n, sentences) of the HAN
    `model` on token ids `x` (n, sentences, words), from a sub-model that outputs them;
    None when `model` has no HAN attention layers. Each sentence's word weights and each
    document's sentence weights sum to 1 (0 for padding)."""
    layers = attention_layers(model)
    x = np.asarray(x)
    if layers is None or x.ndim != 3 or not len(x):
        return None
    word, sentence = layers
    probe = keras.Model(model.inputs, [word.output[1], sentence.output[1]],
                        name="attention_weights")
    words, sentences = probe.predict(x.astype("int32"), batch_size=batch_size, verbose=0)
    return np.asarray(words).reshape(x.shape), np.asarray(sentences)


def highlighted_html(ids: np.ndarray, word_weights: np.ndarray, sentence_weights: np.ndarray,
                     vocabulary: list[str]) -> str:
    """One document (sentences, words) as HTML: each sentence a line whose left bar is as dark
    a blue as its weight, each word on a red background as strong as its weight in its
    sentence times the square root of the sentence's (Yang et al.'s display, Fig. 4/5), both
    scaled so the document's heaviest is full colour; the weights in each title."""
    ids = np.asarray(ids)
    top_sentence = float(sentence_weights.max()) or 1.0
    word_shown = word_weights * np.sqrt(sentence_weights)[:, None]
    top_word = float(word_shown.max()) or 1.0
    lines = []
    for s, row in enumerate(ids):
        kept = [(w, int(i)) for w, i in enumerate(row.tolist()) if i != 0]
        if not kept:
            continue
        spans = " ".join(
            f'<span class="word" title="{word_weights[s, w]:.3f}" style="background:rgba(220,'
            f'40,40,{word_shown[s, w] / top_word:.2f})">'
            f'{html.escape(vocabulary[i] if i < len(vocabulary) else "[UNK]")}</span>'
            for w, i in kept)
        weight = float(sentence_weights[s])
        lines.append(f'<div class="sentence" title="sentence weight {weight:.3f}" style="'
                     f'border-left:6px solid rgba(40,80,220,{weight / top_sentence:.2f});'
                     f'padding-left:4px">{spans}</div>')
    return "".join(lines)


def highlighted_texts(model, inputs: np.ndarray, vocabulary: list[str]) -> list[str] | None:
    """`highlighted_html` of every document in `inputs` for a HAN `model`; None for a model
    without HAN attention layers (the page then shows plain text)."""
    weights = attention_weights(model, inputs)
    if weights is None:
        return None
    words, sentences = weights
    return [highlighted_html(ids, w, s, vocabulary)
            for ids, w, s in zip(np.asarray(inputs), words, sentences, strict=True)]
