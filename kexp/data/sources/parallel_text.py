"""`data=parallel_text`: sentence pairs for translation, one `source<TAB>target` per line.

The Tatoeba/Anki format (`fra.txt`: "Go.<TAB>Va !<TAB>CC-BY 2.0 (France) Attribution: ..."):
columns after the second are ignored, `data.reverse=true` swaps the direction. Blank lines
are skipped; a line without a tab, or with an empty side, is a one-line error naming its
number.

The held-out splits are made by distinct source sentence: such files hold many translations
of the same sentence ("Run!" -> "Cours !", "Courez !"), and a split by line would test on
sources the model trained on. The distinct sources are shuffled with the seed and cut by
`val_fraction` / `test_fraction`; every pair goes with its source. `max_pairs` keeps the first
pairs of the file (before the split), as such files are sorted by length.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

from omegaconf import DictConfig

from kexp.data import keys
from kexp.data.raw import RawPairs
from kexp.errors import KexpError


def load_raw(cfg: DictConfig, seed: int) -> RawPairs:
    """The train, val and test pairs of data.path."""
    path = Path(keys.string(cfg, "path")).expanduser()
    if not path.is_file():
        raise KexpError(f"data.path: '{path}' is not a file (a tab-separated file of "
                        f"source<TAB>target lines)")
    pairs = read_pairs(path, keys.boolean(cfg, "reverse", False))
    max_pairs = keys.positive_int(cfg, "max_pairs", None, allow_none=True)
    if max_pairs is not None:
        pairs = pairs[:max_pairs]
    val, test = keys.fraction(cfg, "val_fraction"), keys.fraction(cfg, "test_fraction")
    if val + test >= 1:
        raise KexpError(f"data.val_fraction + data.test_fraction: {val} + {test} leaves nothing "
                        f"to train on; keep their sum below 1")
    return RawPairs(*split_by_source(pairs, val, test, seed))


def read_pairs(path: Path, reverse: bool = False) -> list[tuple[str, str]]:
    """(source, target) of every non-blank line; one-line errors for a bad file or line."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise KexpError(f"data.path: '{path}' is not UTF-8 text: byte 0x{data[err.start]:02x} "
                        f"at offset {err.start}") from None
    pairs = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        columns = line.split("\t")
        if len(columns) < 2:
            raise KexpError(f"data.path: '{path}' line {number} has no tab; every line must be "
                            f"source<TAB>target: {line[:60]!r}")
        source, target = columns[0].strip(), columns[1].strip()
        if not source or not target:
            raise KexpError(f"data.path: '{path}' line {number} has an empty "
                            f"{'source' if not source else 'target'}: {line[:60]!r}")
        pairs.append((target, source) if reverse else (source, target))
    if not pairs:
        raise KexpError(f"data.path: '{path}' is empty (no source<TAB>target lines)")
    return pairs


def split_by_source(pairs: list[tuple[str, str]], val_fraction: float, test_fraction: float,
                    seed: int) -> tuple[list, list, list]:
    """train, val and test pairs, no source sentence in two of them."""
    sources = list(dict.fromkeys(source for source, _ in pairs))
    random.Random(seed).shuffle(sources)
    n_val = math.ceil(len(sources) * val_fraction) if val_fraction else 0
    n_test = math.ceil(len(sources) * test_fraction) if test_fraction else 0
    if len(sources) - n_val - n_test < 1 or (val_fraction and n_val < 1):
        raise KexpError(f"data: {len(sources)} distinct source sentences are too few for "
                        f"val_fraction {val_fraction} and test_fraction {test_fraction}")
    split_of = {s: "val" for s in sources[:n_val]}
    split_of.update({s: "test" for s in sources[n_val:n_val + n_test]})
    out: dict[str, list] = {"train": [], "val": [], "test": []}
    for pair in pairs:  # in file order within each split
        out[split_of.get(pair[0], "train")].append(pair)
    return out["train"], out["val"], out["test"]
