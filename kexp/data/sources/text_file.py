"""`data=text_file`: a language model's corpus from one UTF-8 file or a folder of .txt files,
split contiguously (train, then validation, then test), never shuffled: no sentence is in
two splits."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from kexp.data import keys
from kexp.data.raw import RawCorpus
from kexp.errors import KexpError


def read_text(path: Path) -> str:
    """The text of one file (CRLF read as LF); one-line errors for empty and non-UTF-8."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise KexpError(f"data.path: '{path}' is not UTF-8 text: byte 0x{data[err.start]:02x} "
                        f"at offset {err.start}") from None
    if not text.strip():
        raise KexpError(f"data.path: '{path}' is empty")
    return text.replace("\r\n", "\n")


def load_raw(cfg: DictConfig, seed: int) -> RawCorpus:
    """The three splits of data.path's text (the seed is not needed: nothing is drawn)."""
    path = Path(keys.string(cfg, "path")).expanduser()
    if not path.exists():
        raise KexpError(f"data.path: '{path}' does not exist")
    files = sorted(path.glob("*.txt")) if path.is_dir() else [path]
    if not files:
        raise KexpError(f"data.path: '{path}' holds no .txt files")
    text = "\n".join(read_text(f) for f in files)
    val, test = keys.fraction(cfg, "val_fraction"), keys.fraction(cfg, "test_fraction")
    if val + test >= 1:
        raise KexpError(f"data.val_fraction + data.test_fraction: {val + test} leaves nothing "
                        f"to train on; keep their sum below 1")
    word = keys.get(cfg, "tokens", "char") == "word"
    first = _cut(text, round(len(text) * (1 - val - test)), word)
    second = _cut(text, round(len(text) * (1 - test)), word)
    return RawCorpus(text[:first], text[first:second], text[second:])


def _cut(text: str, at: int, word: bool) -> int:
    """A split point; with word tokens moved on to the next whitespace, so no word is cut."""
    if word:
        while at < len(text) and not text[at].isspace():
            at += 1
    return at
