"""The tokens of a language model's corpus: characters or words, ids by frequency.

No TensorFlow: `python -m kexp.generate` reads a run's vocabulary.json with it. Id 0 is
padding (never produced by `encode`), 1 the out-of-vocabulary token, then the training
split's tokens, most frequent first, ties by the token: the same text gives the same ids.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from kexp.errors import KexpError

PAD, OOV = "", "[UNK]"
VOCABULARY_FILE = "vocabulary.json"
UNITS = ("char", "word")
PUNCTUATION = ("split", "strip", "keep")
_MARKS = r"[!\"#$%&()*+,\-./:;<=>?@\[\\\]^_`{|}~]"
_CLOSING = set(",.;:!?)]}'\"")


@dataclass
class Tokenizer:
    """Text <-> ids for one corpus (see the module docstring for the ids)."""

    unit: str
    tokens: list[str]
    counts: list[int]
    lowercase: bool = False
    punctuation: str = "split"
    _ids: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._ids = {token: i for i, token in enumerate(self.tokens) if i >= 2}

    @classmethod
    def fit(cls, text: str, unit: str = "char", lowercase: bool = False,
            punctuation: str = "split", max_tokens: int | None = None) -> Tokenizer:
        """The vocabulary of `text` (the training split); `max_tokens` caps its size,
        the 2 reserved ids included, and rarer tokens become [UNK]."""
        probe = cls(unit, [PAD, OOV], [0, 0], lowercase, punctuation)
        counts = Counter(probe.split(text))
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        if max_tokens is not None:
            ranked, rest = ranked[:max_tokens - 2], ranked[max_tokens - 2:]
        else:
            rest = []
        return cls(unit, [PAD, OOV, *(t for t, _ in ranked)],
                   [0, sum(c for _, c in rest), *(c for _, c in ranked)], lowercase, punctuation)

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    def split(self, text: str) -> list[str]:
        """The tokens of `text`, in order."""
        if self.lowercase:
            text = text.lower()
        if self.unit == "char":
            return list(text)
        if self.punctuation == "split":
            text = re.sub(f"({_MARKS})", r" \1 ", text)
        elif self.punctuation == "strip":
            text = re.sub(_MARKS, " ", text)
        return text.split()

    def encode(self, text: str, strict_key: str | None = None) -> list[int]:
        """The ids of `text`; unknown tokens are [UNK], or with `strict_key` (char mode) a
        one-line KexpError naming every unknown character."""
        tokens = self.split(text)
        if strict_key and self.unit == "char":
            unknown = sorted({t for t in tokens if t not in self._ids})
            if unknown:
                raise KexpError(f"{strict_key}: characters not in the vocabulary: "
                                f"{', '.join(repr(c) for c in unknown)} (the run's vocabulary "
                                f"holds {self.vocab_size - 2} characters)")
        return [self._ids.get(t, 1) for t in tokens]

    def decode(self, ids: list[int]) -> str:
        """The text of `ids`, padding dropped (words joined by spaces, none before closing
        punctuation)."""
        tokens = [self.tokens[i] for i in ids if i != 0]
        if self.unit == "char":
            return "".join(tokens)
        text = ""
        for token in tokens:
            glue = not text or token in _CLOSING or text.endswith(("(", "[", "{"))
            text += token if glue else f" {token}"
        return text

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(
            {"version": 1, "unit": self.unit, "tokens": self.tokens, "counts": self.counts,
             "lowercase": self.lowercase, "punctuation": self.punctuation},
            ensure_ascii=False) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Tokenizer:
        saved = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(saved["unit"], saved["tokens"], saved["counts"], saved["lowercase"],
                   saved["punctuation"])
