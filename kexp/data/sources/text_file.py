"""`data=text_file`: a language model's corpus from one UTF-8 file or a folder of .txt files.

A folder's .txt files are read in name order and joined with one "\\n" between files. The
text is split contiguously by characters: the first 1 - val_fraction - test_fraction trains,
then validation, then test; never shuffled, so no passage is in two splits. With word tokens
each split point moves on to the next whitespace, so no word is cut in two.

Each file is read as bytes and decoded as UTF-8 (a leading byte-order mark dropped); Windows
line ends (CRLF) become "\\n", so the same text gives the same tokens on every system. A lone
"\\r" is kept as it is.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from kexp.data import keys
from kexp.data.raw import RawCorpus
from kexp.errors import KexpError


def load_raw(cfg: DictConfig, seed: int) -> RawCorpus:
    """The three splits of data.path's text (the seed is not needed: nothing is drawn)."""
    del seed
    path = Path(keys.string(cfg, "path")).expanduser()
    if not path.exists():
        raise KexpError(f"data.path: '{path}' does not exist")
    if path.is_dir():
        files = sorted((f for f in path.glob("*.txt") if f.is_file()), key=lambda f: f.name)
        if not files:
            raise KexpError(f"data.path: '{path}' is a folder with no .txt files (kexp reads "
                            f"its *.txt files in name order)")
    else:
        files = [path]
    val, test = keys.fraction(cfg, "val_fraction"), keys.fraction(cfg, "test_fraction")
    if val + test >= 1:
        raise KexpError(f"data.val_fraction + data.test_fraction: {val} + {test} leaves nothing "
                        f"to train on; keep their sum below 1")
    text = "\n".join(read_text(f) for f in files)
    word = keys.get(cfg, "tokens", "char") == "word"
    first = cut(text, round(len(text) * (1 - val - test)), word)
    second = max(first, cut(text, round(len(text) * (1 - test)), word))
    return RawCorpus(text[:first], text[first:second], text[second:])


def read_text(path: Path) -> str:
    """The text of one file, CRLF read as LF; one-line errors for an empty or non-UTF-8 file."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")  # offsets in the error count from the file's start
    except UnicodeDecodeError as err:
        raise KexpError(f"data.path: '{path}' is not UTF-8 text: byte 0x{data[err.start]:02x} "
                        f"at offset {err.start}") from None
    if not text.strip():
        raise KexpError(f"data.path: '{path}' is empty")
    return text.replace("\r\n", "\n")


def cut(text: str, at: int, word: bool) -> int:
    """A split point `at`; with word tokens moved on to the next whitespace when it would
    fall inside a word."""
    if word and 0 < at < len(text) and not text[at - 1].isspace():
        while at < len(text) and not text[at].isspace():
            at += 1
    return at
