"""`data=ted_hrlr_translate` (and any TFDS translation set): sentence pairs from
tensorflow-datasets for task=seq2seq.

The builder's supervised keys name the two languages (ted_hrlr_translate/pt_to_en: pt, en);
`data.source_language` / `data.target_language` pick others of a multilingual set, and
`data.reverse=true` swaps the direction. TFDS's own train, validation and test splits are
kept as they are (they are the published ones, so BLEU compares with papers);
`data.max_pairs` keeps the first training pairs. The same offline behaviour as the image
source (kexp.data.sources.tfds): a missing dataset is noticed on disk, a dead network within
seconds.
"""

from __future__ import annotations

import os

from omegaconf import DictConfig

from kexp.data import keys
from kexp.data.raw import RawPairs
from kexp.data.sources.tfds import builder_for, ensure_prepared
from kexp.errors import KexpError

OWN_FILES = "data=parallel_text data.path=<source<TAB>target file>"
SPLITS = ("train", "validation", "test")


def load_raw(cfg: DictConfig, seed: int) -> RawPairs:
    """The train, validation and test pairs of data.name."""
    del seed  # the splits are TFDS's; nothing is drawn here
    name = keys.string(cfg, "name")
    data_dir = keys.get(cfg, "data_dir", None)
    data_dir = os.path.expanduser(str(data_dir)) if data_dir else None
    builder = builder_for(name, data_dir, own_files=OWN_FILES, what="sentence pairs")
    source, target = languages(cfg, name, builder.info)
    available = list(builder.info.splits.keys())  # empty under tfds.testing.mock_data
    missing = [s for s in SPLITS if available and s not in available]
    if missing:
        raise KexpError(f"data.name: {name!r} has splits {available}; kexp needs "
                        f"{', '.join(SPLITS)}; for other layouts use {OWN_FILES}")
    ensure_prepared(builder, name, keys.boolean(cfg, "download", True), own_files=OWN_FILES)
    max_pairs = keys.positive_int(cfg, "max_pairs", None, allow_none=True)
    splits = []
    for split in SPLITS:
        ds = builder.as_dataset(split=split, shuffle_files=False)
        if split == "train" and max_pairs is not None:
            ds = ds.take(max_pairs)
        splits.append([(example[source].decode("utf-8"), example[target].decode("utf-8"))
                       for example in ds.as_numpy_iterator()])
    return RawPairs(*splits, version=str(builder.info.version))


def languages(cfg: DictConfig, name: str, info) -> tuple[str, str]:
    """(source feature, target feature): the configured ones, else the supervised keys;
    swapped with data.reverse."""
    features = list(info.features.keys())
    default = tuple(info.supervised_keys or ()) if len(info.supervised_keys or ()) == 2 \
        else (None, None)
    chosen = (keys.get(cfg, "source_language", None) or default[0],
              keys.get(cfg, "target_language", None) or default[1])
    for key, language in zip(("data.source_language", "data.target_language"), chosen,
                             strict=True):
        if language is None:
            raise KexpError(f"{key}: {name!r} names no default pair; set it to one of "
                            f"{', '.join(features)}")
        if language not in features:
            raise KexpError(f"{key}: {language!r} is not a language of {name!r}; expected one "
                            f"of {', '.join(features)}")
    return chosen[::-1] if keys.boolean(cfg, "reverse", False) else chosen
