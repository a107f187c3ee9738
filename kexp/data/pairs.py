"""A sequence-to-sequence task's half of the pipeline: (source, target) text pairs -> ids.

normalize (Unicode NFC) -> fit a Tokenizer per side on the training pairs -> encode -> drop
pairs with a side longer than `max_length` tokens -> pad -> shuffle (keyed by the epoch, as
kexp.data.stages.epoch_batches) -> batch -> prefetch

Each batch is ((source, decoder input), decoder target, weight): the source ids (B, Ls); the
target behind a start token, [START] t1 .. tn (teacher forcing); the target followed by an
end token, t1 .. tn [END]; and a float32 weight (B, Lt) that is 1 on those n + 1 positions
and 0 on the padding, so the loss and accuracy never count a padded position. Lt is the
longest kept target + 1, Ls the longest kept source.

The target vocabulary holds [START] and [END] at ids 2 and 3 (after padding and [UNK]):
strings that no text encodes to, since a char is one character and "[" splits off a word.
"""

from __future__ import annotations

import json
import logging
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from omegaconf import DictConfig

from kexp.config import check
from kexp.data import keys
from kexp.data.bundle import DataBundle, DataSpec
from kexp.data.corpus import fingerprint
from kexp.data.raw import RawPairs
from kexp.data.stages import epoch_batches
from kexp.data.tokenizer import PAD, UNK, Tokenizer
from kexp.errors import KexpError

log = logging.getLogger(__name__)

START, END = "[START]", "[END]"
START_ID, END_ID = 2, 3
VOCABULARIES_FILE = "vocabularies.json"  # what `Translation.save` writes into a run directory


@dataclass
class Translation:
    """What turns text into a model's ids and back: both tokenizers, the normalization and
    the fixed lengths the model reads (saved with the run, read by kexp.translate)."""

    source: Tokenizer
    target: Tokenizer
    normalize: str  # "nfc" or "none"
    source_length: int
    target_length: int
    max_length: int

    def prepare(self, text: str) -> str:
        return unicodedata.normalize("NFC", text) if self.normalize == "nfc" else text

    def encode_source(self, text: str, key: str = "text") -> list[int]:
        """The padded source ids of `text`; one line when it is longer than the model reads."""
        ids = self.source.encode(self.prepare(text))
        if len(ids) > self.source_length:
            raise KexpError(f"{key}: {len(ids)} {self.source.unit} tokens, longer than the "
                            f"{self.source_length} the model reads (data.max_length "
                            f"{self.max_length}): {text[:60]!r}")
        return ids + [0] * (self.source_length - len(ids))

    def decode_target(self, ids: Any) -> str:
        """The text of generated target ids, up to the first [END] (start and padding left
        out)."""
        out = []
        for i in (int(i) for i in ids):
            if i == END_ID:
                break
            if i != START_ID:
                out.append(i)
        return self.target.decode(out)

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / VOCABULARIES_FILE
        path.write_text(json.dumps({
            "source": self.source.to_json(), "target": self.target.to_json(),
            "normalize": self.normalize, "source_length": self.source_length,
            "target_length": self.target_length, "max_length": self.max_length},
            ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, folder: str | Path) -> Translation:
        path = Path(folder) / VOCABULARIES_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(Tokenizer.from_json(data["source"]), Tokenizer.from_json(data["target"]),
                       data["normalize"], int(data["source_length"]),
                       int(data["target_length"]), int(data["max_length"]))
        except FileNotFoundError:
            raise KexpError(f"run_dir: '{folder}' has no {VOCABULARIES_FILE}; is it a "
                            f"task=seq2seq run?") from None
        except (ValueError, KeyError, TypeError) as err:
            raise KexpError(f"'{path}' is not a kexp translation vocabulary: "
                            f"{str(err).splitlines()[0]}") from None


def with_start_and_end(tokenizer: Tokenizer) -> Tokenizer:
    """`tokenizer` with [START] and [END] at ids 2 and 3, its own tokens moved up by two."""
    return Tokenizer(tokenizer.unit, [PAD, UNK, START, END, *tokenizer.tokens[2:]],
                     [0, tokenizer.counts[1], 0, 0, *tokenizer.counts[2:]],
                     tokenizer.lowercase, tokenizer.punctuation)


def build(raw: RawPairs, cfg: DictConfig, global_batch_size: int, seed: int | None
          ) -> DataBundle:
    """The batched pairs of `raw`'s splits that `cfg` (the `data` group) describes."""
    unit = check("data.tokens", keys.get(cfg, "tokens", "word"))
    normalize = check("data.normalize", keys.get(cfg, "normalize", "nfc"))
    lowercase = keys.boolean(cfg, "lowercase", True)
    punctuation = check("data.punctuation", keys.get(cfg, "punctuation", "split"))
    max_tokens = check("data.max_tokens", keys.get(cfg, "max_tokens", None), wording="must be")
    max_length = keys.positive_int(cfg, "max_length")

    splits = {"train": raw.train, "val": raw.val, "test": raw.test}
    if not raw.train:
        raise KexpError("data: the training split holds no pairs")
    norm = (lambda s: unicodedata.normalize("NFC", s)) if normalize == "nfc" else str
    splits = {k: [(norm(s), norm(t)) for s, t in v] for k, v in splits.items()}
    cap = None if max_tokens is None else int(max_tokens)
    source = Tokenizer.fit("\n".join(s for s, _ in splits["train"]), unit, lowercase,
                           punctuation, cap)
    target = with_start_and_end(Tokenizer.fit("\n".join(t for _, t in splits["train"]), unit,
                                              lowercase, punctuation,
                                              None if cap is None else max(3, cap - 2)))
    encoded, texts = {}, {}
    for name, pairs in splits.items():
        both = [((source.encode(s), target.encode(t)), (s, t)) for s, t in pairs]
        both = [(ids, text) for ids, text in both
                if 0 < len(ids[0]) <= max_length and len(ids[1]) <= max_length]
        kept = [ids for ids, _ in both]
        texts[name] = [text for _, text in both]
        if len(kept) < len(pairs):
            log.info("data: %d of the %d %s pairs have a side longer than data.max_length=%d "
                     "tokens (or an empty one) and are left out", len(pairs) - len(kept),
                     len(pairs), name, max_length)
        if not kept:
            raise KexpError(f"data: no {name} pair is within data.max_length={max_length} "
                            f"{unit} tokens a side; raise data.max_length")
        encoded[name] = kept
    source_length = max(len(s) for pairs in encoded.values() for s, _ in pairs)
    target_length = max(len(t) for pairs in encoded.values() for _, t in pairs) + 1
    arrays = {name: _arrays(pairs, source_length, target_length)
              for name, pairs in encoded.items()}

    def dataset(name: str) -> tf.data.Dataset:
        src, tin, tout, w = arrays[name]
        return tf.data.Dataset.from_tensor_slices(((src, tin), tout, w))

    train, epoch = epoch_batches(dataset("train"), len(encoded["train"]),
                                 len(encoded["train"]), global_batch_size, seed)
    use_fingerprint = keys.boolean(cfg, "fingerprint", True)
    spec = DataSpec(
        name=str(keys.get(cfg, "name", None) or keys.get(cfg, "source", "pairs")),
        input_shape=(source_length,), num_classes=0, class_names=[],
        num_train=len(encoded["train"]), num_val=len(encoded["val"]),
        num_test=len(encoded["test"]), vocab_size=source.vocab_size, version=raw.version,
        fingerprint=fingerprint(a for name in ("train", "val", "test")
                                for a in arrays[name][:3]) if use_fingerprint else None,
        target_shape=(target_length,), target_vocab_size=target.vocab_size, token_unit=unit,
        num_tokens=tuple(int(arrays[n][3].sum()) for n in ("train", "val", "test")))
    translation = Translation(source, target, normalize, source_length, target_length,
                              max_length)
    return DataBundle(
        train=train.prefetch(tf.data.AUTOTUNE),
        val=dataset("val").batch(global_batch_size).prefetch(tf.data.AUTOTUNE),
        test=dataset("test").batch(global_batch_size).prefetch(tf.data.AUTOTUNE),
        spec=spec, epoch=epoch, tokenizer=translation, pairs=texts)


def _arrays(pairs: list[tuple[list[int], list[int]]], source_length: int, target_length: int
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n = len(pairs)
    src = np.zeros((n, source_length), np.int32)
    tin = np.zeros((n, target_length), np.int32)
    tout = np.zeros((n, target_length), np.int32)
    for i, (s, t) in enumerate(pairs):
        src[i, :len(s)] = s
        tin[i, :len(t) + 1] = [START_ID, *t]
        tout[i, :len(t) + 1] = [*t, END_ID]
    return src, tin, tout, (tout != 0).astype(np.float32)
