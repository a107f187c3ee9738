"""The tokenizer of a language-model corpus: text <-> int token ids, characters or words.

Pure Python (no TensorFlow), so a saved run can encode a prompt and decode what a model wrote
without loading its data. Ids follow the convention of kexp.data.text: id 0 is "" (padding,
never produced by `encode`), id 1 is "[UNK]" (a token outside the vocabulary), then the
training split's tokens by frequency, most frequent first, ties by the token itself: the same
training text always gives the same ids.

Words (`unit="word"`): the text is split on whitespace; a punctuation mark is any character
that is neither a letter, a digit, an underscore nor whitespace (regex `[^\\w\\s]`), and
`punctuation` decides what becomes of it: "split" (each mark its own token, so "don't." is
"don", "'", "t", "."), "strip" (marks removed: "dont") or "keep" (attached to its word:
"don't."). Characters (`unit="char"`): every character is a token, whitespace and newlines
included; `punctuation` does not apply.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from kexp.errors import KexpError

PAD, UNK = "", "[UNK]"  # ids 0 and 1, as in kexp.data.text
PAD_ID, UNK_ID = 0, 1
UNITS = ("char", "word")
PUNCTUATION = ("split", "strip", "keep")
VOCABULARY_FILE = "vocabulary.json"  # what `save` writes into a run directory
FORMAT_VERSION = 1  # of the vocabulary.json layout

_WORD_OR_MARK = re.compile(r"\w+|[^\w\s]")
_MARK = re.compile(r"[^\w\s]")
# in decoded words: no space before a closing mark, none after an opening one
_CLOSING = frozenset(",.;:!?)]}%")
_OPENING = frozenset("([{")
# in decoded words: no space on either side of an apostrophe or a hyphen ("l'aide",
# "montre-moi", "don't"), which the split tokenizes as tokens of their own
_JOINING = frozenset("'-’")


class Tokenizer:
    """A fitted vocabulary and the rules that split text into its tokens.

    `tokens[i]` is the token of id i and `counts[i]` how often the training split held it
    (0 for padding; for [UNK], the training tokens that `max_tokens` left out).
    """

    def __init__(self, unit: str, tokens: Sequence[str], counts: Sequence[int],
                 lowercase: bool = False, punctuation: str = "split") -> None:
        if unit not in UNITS:
            raise ValueError(f"unit {unit!r} must be one of {', '.join(UNITS)}")
        if punctuation not in PUNCTUATION:
            raise ValueError(f"punctuation {punctuation!r} must be one of "
                             f"{', '.join(PUNCTUATION)}")
        if list(tokens[:2]) != [PAD, UNK]:
            raise ValueError(f"tokens must start with {PAD!r}, {UNK!r}")
        if len(counts) != len(tokens):
            raise ValueError(f"{len(tokens)} tokens but {len(counts)} counts")
        if len(set(tokens)) != len(tokens):
            raise ValueError("tokens must be distinct")
        self.unit = unit
        self.tokens: list[str] = [str(t) for t in tokens]
        self.counts: list[int] = [int(c) for c in counts]
        self.lowercase = bool(lowercase)
        self.punctuation = punctuation
        self._ids = {token: i for i, token in enumerate(self.tokens)}

    # ------------------------------------------------------------------ fitting

    @classmethod
    def fit(cls, text: str, unit: str, lowercase: bool = False, punctuation: str = "split",
            max_tokens: int | None = None) -> Tokenizer:
        """The vocabulary of `text` (the training split): every token, or with `max_tokens`
        (the vocabulary size including ids 0 and 1, >= 3) the max_tokens - 2 most frequent;
        the rest become [UNK]."""
        if max_tokens is not None and (isinstance(max_tokens, bool) or int(max_tokens) < 3):
            raise ValueError(f"max_tokens {max_tokens!r} must be >= 3 or None")
        probe = cls(unit, [PAD, UNK], [0, 0], lowercase, punctuation)  # checks the settings
        counted = Counter(probe.split(text))
        counted.pop(PAD, None)
        left_out = counted.pop(UNK, 0)  # a literal "[UNK]" in the text is the unknown token
        ranked = sorted(counted.items(), key=lambda item: (-item[1], item[0]))
        if max_tokens is not None:
            left_out += sum(count for _, count in ranked[max_tokens - 2:])
            ranked = ranked[:max_tokens - 2]
        return cls(unit, [PAD, UNK, *(t for t, _ in ranked)],
                   [0, left_out, *(c for _, c in ranked)], lowercase, punctuation)

    # ------------------------------------------------------------------ text <-> ids

    @property
    def vocab_size(self) -> int:
        """Ids run 0..vocab_size-1 (0 pads, 1 is [UNK])."""
        return len(self.tokens)

    def split(self, text: str) -> list[str]:
        """The tokens of `text`: its characters, or its words and punctuation marks."""
        if self.lowercase:
            text = text.lower()
        if self.unit == "char":
            return list(text)
        if self.punctuation == "split":
            return _WORD_OR_MARK.findall(text)
        if self.punctuation == "strip":
            return _MARK.sub("", text).split()
        return text.split()

    def encode(self, text: str, strict_key: str | None = None) -> list[int]:
        """Token ids of `text`, an unknown token as 1 ([UNK]).

        `strict_key` (a config key such as "prompt"): in char mode a character outside the
        vocabulary is a KexpError naming the key and every such character; words outside the
        vocabulary still become [UNK] (a word model meets new words all the time).
        """
        ids = self._ids
        tokens = self.split(text)
        if strict_key is not None and self.unit == "char":
            unknown = list(dict.fromkeys(t for t in tokens if t not in ids or t in (PAD, UNK)))
            if unknown:
                raise KexpError(f"{strict_key}: characters not in the vocabulary: "
                                f"{', '.join(repr(c) for c in unknown)} (the run's vocabulary "
                                f"holds {self.vocab_size - 2} characters)")
        return [ids.get(t, UNK_ID) or UNK_ID for t in tokens]  # "" never gets id 0

    def decode(self, ids: Iterable[int]) -> str:
        """The text of `ids`: padding dropped, [UNK] written as [UNK]. Characters are joined as
        they are; words with single spaces, none before a split-off closing mark (, . ; : ! ?
        ) ] } %), after an opening one (( [ {) or around an apostrophe or hyphen."""
        tokens = [self.tokens[int(i)] for i in ids if int(i) != PAD_ID]
        if self.unit == "char":
            return "".join(tokens)
        out: list[str] = []
        for token in tokens:
            if out and not (token in _CLOSING or out[-1] in _OPENING or token in _JOINING
                            or out[-1] in _JOINING):
                out.append(" ")
            out.append(token)
        return "".join(out)

    # ------------------------------------------------------------------ saving

    def to_json(self) -> dict[str, Any]:
        """Everything `from_json` needs, JSON-serializable."""
        return {"version": FORMAT_VERSION, "unit": self.unit, "lowercase": self.lowercase,
                "punctuation": self.punctuation, "tokens": list(self.tokens),
                "counts": list(self.counts)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Tokenizer:
        """The Tokenizer `to_json` described (ValueError when `data` is not one)."""
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object")
        version = data.get("version")
        if version != FORMAT_VERSION:
            raise ValueError(f"vocabulary format version {version!r}; this kexp reads "
                             f"{FORMAT_VERSION}")
        try:
            return cls(data["unit"], data["tokens"], data["counts"],
                       data.get("lowercase", False), data.get("punctuation", "split"))
        except (KeyError, TypeError) as err:
            raise ValueError(f"missing or malformed field {err}") from None

    def save(self, path: str | Path) -> Path:
        """Write the vocabulary as JSON to `path` (a directory: `path`/vocabulary.json)."""
        path = Path(path)
        if path.is_dir():
            path = path / VOCABULARY_FILE
        path.write_text(json.dumps(self.to_json(), ensure_ascii=False, indent=1) + "\n",
                        encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Tokenizer:
        """The Tokenizer `save` wrote (`path` a directory: `path`/vocabulary.json); a missing or
        broken file is a one-line KexpError naming it."""
        path = Path(path)
        if path.is_dir():
            path = path / VOCABULARY_FILE
        try:
            return cls.from_json(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise KexpError(f"'{path}' does not exist (a language-model run saves its "
                            f"{VOCABULARY_FILE} there)") from None
        except (ValueError, UnicodeDecodeError) as err:  # JSONDecodeError is a ValueError
            raise KexpError(f"'{path}' is not a kexp vocabulary: "
                            f"{str(err).splitlines()[0]}") from None

    # ------------------------------------------------------------------ plumbing

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tokenizer) and self.to_json() == other.to_json()

    def __repr__(self) -> str:
        return (f"Tokenizer(unit={self.unit!r}, vocab_size={self.vocab_size}, "
                f"lowercase={self.lowercase}, punctuation={self.punctuation!r})")
