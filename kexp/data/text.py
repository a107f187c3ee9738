"""The text half of the pipeline: raw strings -> int32 token ids with a TextVectorization step.

subset -> adapt the vocabulary on train -> vectorize (batched, AUTOTUNE) -> cache
       -> shuffle [train] -> batch -> prefetch

A text source hands `kexp.data.pipeline.build` RawSplits whose x is a scalar tf.string; build()
passes them here. Ids follow Keras' TextVectorization: 0 pads (at the end), 1 is a word outside
the vocabulary, 2.. are the vocabulary's words, most frequent first (ties by the word), so the
same training texts always give the same ids: `python -m kexp.eval` re-runs `data.load` with the
run's config and seed and sees the ids the model was trained on. `DataBundle.vocabulary` lists
the words; `save_vocabulary` writes them for `data.vocabulary_file`.

Documents of sentences (`data.sentences=S`, for model=han): each text is split into sentences
(`split_sentences`), each sentence vectorized to `data.sentence_length` ids as above, sentences
with no token left dropped, and the first S kept: x is then (S, sentence_length) int32 ids, whole
padding sentences (all 0) after the last one. The vocabulary is adapted on the whole texts, as
for flat ids, so both layouts give the same ids. `data.sentences` null: flat (sequence_length,).
"""

from __future__ import annotations

from pathlib import Path

import keras
import tensorflow as tf
from omegaconf import DictConfig

from kexp.config import STANDARDIZE, check
from kexp.data import keys
from kexp.data.bundle import DataBundle, DataSpec
from kexp.data.raw import RawSplits
from kexp.data.stages import count_examples, count_splits, epoch_batches, fingerprint
from kexp.errors import KexpError

PAD, OOV = "", "[UNK]"  # ids 0 and 1, as TextVectorization names them
# HTML left in scraped text (imdb's <br />, ag_news' "#39;s" and "&lt;b&gt;") and ag_news'
# stray backslashes: replaced by a space so that they never glue two words together
_MARKUP = r"(?i)<br\s*/?>|&#?[a-z0-9]+;|#\d+;|\\"
# Keras' lower_and_strip_punctuation set (ASCII punctuation, apostrophes included)
_PUNCTUATION = r'[!"#$%&()\*\+,\-\./:;<=>?@\[\\\]^_`{|}~\']'
_VECTORIZE_BATCH = 256  # TextVectorization is far faster on batches than on single strings
# Sentence boundaries (split_sentences): HTML line breaks (imdb's <br />) and newlines, and the
# whitespace after a run of . ! ? (with any closing quotes or brackets that follow it)
_BREAK = "\x1e"  # ASCII record separator: marks the boundaries; one in a text is a space
_HARD_BREAKS = r"(?i)<br\s*/?>|\r\n|\r|\n"
_SENTENCE_END = r"([.!?]+[\"')\]]*)\s+"


def build(raw: RawSplits, cfg: DictConfig, global_batch_size: int, seed: int | None
          ) -> DataBundle:
    """Turn raw (string, label) splits into the batched, tokenized DataBundle `cfg` describes."""
    x_spec = raw.train.element_spec[0]
    if x_spec.dtype != tf.string or x_spec.shape.rank != 0:
        raise KexpError(f"data: texts must be single strings, got {x_spec}")
    max_tokens = _max_tokens(cfg)
    sequence_length = keys.positive_int(cfg, "sequence_length")
    sentences = _sentences(cfg)
    if sentences is not None:  # documents: each sentence gets data.sentence_length ids
        sequence_length = keys.positive_int(cfg, "sentence_length", 32)
    mode = _standardize_mode(cfg)
    vocabulary_file = _vocabulary_file(cfg)
    subset = keys.positive_int(cfg, "subset", None, allow_none=True)
    cache = keys.boolean(cfg, "cache", True)
    shuffle_buffer = keys.positive_int(cfg, "shuffle_buffer", 10000)

    splits = {"train": raw.train, "val": raw.val, "test": raw.test}
    if subset is not None:
        splits = {name: ds.take(subset) for name, ds in splits.items()}
    vectorizer = keras.layers.TextVectorization(
        max_tokens=max_tokens, standardize=standardizer(mode), split="whitespace",
        output_mode="int", output_sequence_length=sequence_length,
    )
    if vocabulary_file is None:
        # the training split only: val and test words the model never saw stay OOV
        vectorizer.adapt(splits["train"].map(lambda x, y: x).batch(_VECTORIZE_BATCH))
    else:
        tokens = read_vocabulary("vocabulary_file", vocabulary_file)
        _set_vocabulary(vectorizer, tokens, max_tokens, vocabulary_file)
    vocabulary = [str(token) for token in vectorizer.get_vocabulary()]
    if len(vocabulary) <= 2:  # nothing to learn from (and a lookup table left uninitialized)
        n = count_examples(splits["train"])
        if n == 0:
            raise KexpError("data: the train split is empty (check data.val_fraction / the data)")
        raise KexpError(f"data: the {n} training texts have no words left after "
                        f"data.standardize={mode} (are the texts empty?)")

    to_ids = Vectorize(vectorizer, sentences, sequence_length)

    def vectorize(x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return to_ids(x), tf.cast(y, tf.int32)

    def prepare(ds: tf.data.Dataset) -> tf.data.Dataset:
        ds = ds.batch(_VECTORIZE_BATCH).map(vectorize, num_parallel_calls=tf.data.AUTOTUNE)
        ds = ds.unbatch()
        return ds.cache() if cache else ds

    train, val, test = (prepare(splits[name]) for name in ("train", "val", "test"))
    counts = count_splits(train, val, test)
    # unbatch() hid the sizes; knowing them gives Keras its steps per epoch (no "ran out of data")
    train, val, test = (ds.apply(tf.data.experimental.assert_cardinality(counts[name]))
                        for name, ds in (("train", train), ("val", val), ("test", test)))
    read = fingerprint(train, val, test) if keys.boolean(cfg, "fingerprint", True) else None

    train, epoch = epoch_batches(train, counts["train"], shuffle_buffer, global_batch_size, seed)
    spec = DataSpec(
        name=str(keys.get(cfg, "name", None) or keys.get(cfg, "source", "data")),
        input_shape=(sequence_length,) if sentences is None else (sentences, sequence_length),
        num_classes=len(raw.class_names),
        class_names=list(raw.class_names),
        num_train=counts["train"],
        num_val=counts["val"],
        num_test=counts["test"],
        vocab_size=len(vocabulary),
        version=raw.version,
        fingerprint=read,
    )
    return DataBundle(
        train=train.prefetch(tf.data.AUTOTUNE),
        val=val.batch(global_batch_size).prefetch(tf.data.AUTOTUNE),
        test=test.batch(global_batch_size).prefetch(tf.data.AUTOTUNE),
        spec=spec,
        vocabulary=vocabulary,
        epoch=epoch,
        preprocess=to_ids,
        raw_test=splits["test"],
    )


class Vectorize(tf.Module):
    """Raw texts (B,) -> the model's int32 ids: (B, sequence_length), or with `sentences`
    (B, sentences, sequence_length) sentence by sentence. A tf.Module so that the lookup table
    of its TextVectorization is saved with a SavedModel that calls it (`kexp.export`)."""

    def __init__(self, vectorizer: keras.layers.TextVectorization, sentences: int | None,
                 sequence_length: int) -> None:
        super().__init__(name="vectorize")
        self.vectorizer = vectorizer
        self.sentences, self.sequence_length = sentences, sequence_length

    def __call__(self, texts: tf.Tensor) -> tf.Tensor:
        if self.sentences is None:
            return tf.cast(self.vectorizer(texts), tf.int32)
        pieces = split_sentences(texts)  # (B, None) sentence strings
        ids = tf.cast(self.vectorizer(pieces.flat_values), tf.int32)  # (sentences, length)
        kept = ids[:, 0] != 0  # padded at the end: a sentence with no token left starts with 0
        documents = tf.RaggedTensor.from_value_rowids(
            tf.boolean_mask(ids, kept), tf.boolean_mask(pieces.value_rowids(), kept),
            nrows=tf.shape(texts, out_type=tf.int64)[0])
        return documents[:, :self.sentences].to_tensor(
            0, shape=[None, self.sentences, self.sequence_length])


def split_sentences(texts: tf.Tensor) -> tf.RaggedTensor:
    """The sentences of each text in `texts` (strings, shape (B,)): a (B, None) RaggedTensor.

    A hand-written rule, not a trained sentence splitter (kexp installs neither nltk nor
    spaCy): a sentence ends at an HTML line break (`<br>`, `<br />`: imdb's paragraphs), at a
    newline, and after a run of `.`, `!` or `?` (with any closing quotes or brackets after it)
    that whitespace follows. So "Mr. Smith" is split after "Mr." and "3.5" is not split.
    Sentences are returned as they are (standardizing comes after); empty ones may be among
    them (`build` drops every sentence with no token left)."""
    texts = tf.strings.regex_replace(texts, _BREAK, " ")
    texts = tf.strings.regex_replace(texts, _HARD_BREAKS, _BREAK)
    texts = tf.strings.regex_replace(texts, _SENTENCE_END, "\\1" + _BREAK)
    return tf.strings.split(texts, _BREAK)


def standardizer(mode: str):
    """The standardize callable for `data.standardize=mode` (None: leave the text as it is)."""
    if mode == "none":
        return None

    def standardize(texts: tf.Tensor) -> tf.Tensor:
        texts = tf.strings.regex_replace(texts, _MARKUP, " ")
        if mode in ("lower", "lower_and_strip_punctuation"):
            texts = tf.strings.lower(texts, encoding="utf-8")  # not only A-Z: also É, Ä, ...
        if mode in ("strip_punctuation", "lower_and_strip_punctuation"):
            texts = tf.strings.regex_replace(texts, _PUNCTUATION, "")
        return texts

    return standardize


def save_vocabulary(vocabulary: list[str], path: str | Path) -> Path:
    """Write `DataBundle.vocabulary` as `data.vocabulary_file` reads it: ids 2.. one per line."""
    if list(vocabulary[:2]) != [PAD, OOV]:
        raise ValueError(f"expected a DataBundle.vocabulary starting with {PAD!r}, {OOV!r}")
    path = Path(path)
    path.write_text("".join(f"{token}\n" for token in vocabulary[2:]), encoding="utf-8")
    return path


def read_vocabulary(key: str, path: Path) -> list[str]:
    """The words of a vocabulary file, one per line (id 2 first); checked, one-line errors."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise KexpError(f"data.{key}: '{path}' is not UTF-8 text ({err.reason} at byte "
                        f"{err.start})") from None
    if not lines:
        raise KexpError(f"data.{key}: '{path}' is empty")
    seen: dict[str, int] = {}
    for number, token in enumerate(lines, start=1):
        if not token or token != token.strip() or len(token.split()) != 1:
            raise KexpError(f"data.{key}: '{path}' line {number}: {token!r} is not one word "
                            f"(one token per line, no blanks or spaces)")
        if token in (PAD, OOV):
            raise KexpError(f"data.{key}: '{path}' line {number}: {token!r} is reserved (ids 0 "
                            f"and 1 are padding and OOV; the file starts at id 2)")
        if token in seen:
            raise KexpError(f"data.{key}: '{path}' line {number}: {token!r} repeats line "
                            f"{seen[token]}")
        seen[token] = number
    return lines


def _set_vocabulary(vectorizer, tokens: list[str], max_tokens: int | None, path: Path) -> None:
    if max_tokens is not None:
        tokens = tokens[: max_tokens - 2]  # the file lists the most frequent words first
    try:
        vectorizer.set_vocabulary(tokens)
    except ValueError as err:
        raise KexpError(f"data.vocabulary_file: '{path}': {str(err).splitlines()[0]}") from None


def _max_tokens(cfg: DictConfig) -> int | None:
    value = check("data.max_tokens", keys.get(cfg, "max_tokens"), wording="must be")
    return None if value is None else int(value)


def _sentences(cfg: DictConfig) -> int | None:
    value = check("data.sentences", keys.get(cfg, "sentences", None), wording="must be")
    return None if value is None else int(value)


def _standardize_mode(cfg: DictConfig) -> str:
    value = check("data.standardize", keys.get(cfg, "standardize", STANDARDIZE[0]),
                  wording="is not")
    return "none" if value is None else value


def _vocabulary_file(cfg: DictConfig) -> Path | None:
    if keys.get(cfg, "vocabulary_file", None) is None:
        return None
    return keys.existing_path(cfg, "vocabulary_file", "file")
