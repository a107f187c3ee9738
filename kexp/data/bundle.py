"""What `kexp.data.load` returns. Kept free of TensorFlow imports so it is cheap to import."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import tensorflow as tf


@dataclass(frozen=True)
class DataSpec:
    """Static facts about the data a model needs, and the split sizes actually used."""

    name: str
    # one example: (H, W, C) images, (sequence_length,) token ids or (F,) table features
    input_shape: tuple[int, ...]
    num_classes: int  # 0 for real targets
    class_names: list[str]  # [] for real targets
    num_train: int
    num_val: int
    num_test: int
    vocab_size: int | None = None  # text only: token ids run 0..vocab_size-1 (0 pads, 1 is OOV)
    version: str | None = None  # the source's version where it has one (TFDS)
    fingerprint: str | None = None  # of the examples read: kexp.data.stages.fingerprint
    # real targets only: the name of each target column (y is float32 (B, len(target_names)));
    # None: y holds int32 class ids
    target_names: list[str] | None = None
    # real targets only: per target column, the mean and std of the training split's targets
    # (as the model reads them, after data.subset); a std of 0 is given as 1.0
    target_mean: tuple[float, ...] | None = None
    target_std: tuple[float, ...] | None = None
    # tables only: the name of each feature after encoding (a numeric column keeps its name, a
    # categorical one becomes one `column=value` feature per category)
    feature_names: list[str] | None = None
    # language-model corpora only (kexp.data.corpus): "char" or "word", what one token is;
    # x and y are then (B, context) int32 ids, y the next token of each x, and val and test
    # add a (B, context) float32 weight that counts every target token of the split once
    token_unit: str | None = None
    # language-model corpora only: the tokens of the train, val and test splits (sequence
    # pairs: their target tokens, each [END] included, the positions the loss counts)
    num_tokens: tuple[int, int, int] | None = None
    # sequence pairs only (kexp.data.pairs): (target_length,) of the decoder's ids and the
    # target vocabulary; x is then (source ids, decoder input), y the decoder target
    target_shape: tuple[int, ...] | None = None
    target_vocab_size: int | None = None
    # point sets only (kexp.data.points): the decoder's length, points + 1; x is then (points
    # (B, k, d) float32, decoder input pointer ids), y the decoder target's pointer ids
    pointer_length: int | None = None

    @property
    def tokens_per_example(self) -> float | None:
        """The tokens one training example trains on: a language model's window, or the mean
        target tokens of a training pair; None for data that are not text tokens."""
        if self.token_unit is None:
            return None
        if self.target_shape is None:
            return float(self.input_shape[0])
        return self.num_tokens[0] / max(1, self.num_train)

    @property
    def is_regression(self) -> bool:
        """True when y holds real-valued target vectors rather than class ids."""
        return self.target_names is not None


@dataclass
class DataBundle:
    """Batched, prefetched (x, y) splits; only `train` is shuffled and augmented.

    x is float32 images (B, H, W, C), int32 token ids for text (B, L) or float32 table features
    (B, F); y is int32 class ids (B,), or float32 real targets (B, k) when
    `spec.is_regression`."""

    train: tf.data.Dataset
    val: tf.data.Dataset
    test: tf.data.Dataset
    spec: DataSpec
    # text only: the token of each id, vocabulary[0] = "" (padding), [1] = "[UNK]" (OOV);
    # kexp.data.text.save_vocabulary writes it for data.vocabulary_file
    vocabulary: list[str] | None = None
    # the epoch the training order is drawn for (kexp.data.stages.epoch_batches); the
    # DataEpoch callback sets it at every epoch's start
    epoch: tf.Variable | None = None
    # language-model corpora only: the kexp.data.tokenizer.Tokenizer of the token ids (its
    # vocabulary fitted on the training split; saved with the run as vocabulary.json);
    # sequence pairs: a kexp.data.pairs.Translation (both sides' tokenizers and lengths)
    tokenizer: Any = None
    # sequence pairs only: the (source, target) texts of each split's pairs, in the order of
    # its batches ("train", "val", "test"): the references BLEU compares with
    pairs: dict[str, list[tuple[str, str]]] | None = None
    # images, tables and text classified or regressed: what the pipeline does to a batch of
    # raw x before the model sees it (scale and normalize; cast; vectorize), the very function
    # it maps, so that `kexp.export` serves raw inputs exactly as kexp trained on them (text:
    # a tf.Module holding the lookup table, saved with the served model)
    preprocess: Callable[[Any], Any] | None = None
    # the same runs: the test split's raw (x, y) examples, unbatched, in the order of `test`
    raw_test: tf.data.Dataset | None = None
