"""`data=tiny_shakespeare`: Karpathy's tiny Shakespeare corpus through tensorflow-datasets.

The TFDS builder holds three splits (train, validation, test), each one example whose `text`
feature is the whole split (about 1 MB, 55 kB and 55 kB of characters); they become the three
texts of a RawCorpus, as they are. The same offline behaviour as the image source
(kexp.data.sources.tfds): a missing dataset is noticed on disk, a dead network within seconds.
"""

from __future__ import annotations

import os

import tensorflow_datasets as tfds
from omegaconf import DictConfig

from kexp.data import keys
from kexp.data.raw import RawCorpus
from kexp.data.sources.tfds import builder_for, ensure_prepared
from kexp.errors import KexpError

OWN_FILES = "data=text_file data.path=<file or folder>"
SPLITS = ("train", "validation", "test")
TEXT = "text"


def load_raw(cfg: DictConfig, seed: int) -> RawCorpus:
    """The train, validation and test texts of data.name (tiny_shakespeare)."""
    del seed  # the splits are fixed; nothing is drawn here
    name = keys.string(cfg, "name")
    data_dir = keys.get(cfg, "data_dir", None)
    data_dir = os.path.expanduser(str(data_dir)) if data_dir else None
    download = keys.boolean(cfg, "download", True)

    builder = builder_for(name, data_dir, own_files=OWN_FILES, what="texts")
    features = builder.info.features
    if TEXT not in features or not isinstance(features[TEXT], tfds.features.Text):
        raise KexpError(f"data.name: {name!r} is not a text corpus (kexp needs a {TEXT!r} text "
                        f"feature; it has {list(features.keys())}); for your own text use "
                        f"{OWN_FILES}")
    available = list(builder.info.splits.keys())  # empty under tfds.testing.mock_data
    missing = [s for s in SPLITS if available and s not in available]
    if missing:
        raise KexpError(f"data.name: {name!r} has splits {available}; kexp needs "
                        f"{', '.join(SPLITS)}; for other layouts use {OWN_FILES}")
    ensure_prepared(builder, name, download, own_files=OWN_FILES)
    texts = []
    for split in SPLITS:
        ds = builder.as_dataset(split=split, shuffle_files=False)
        # one example per split; were there more, they are consecutive parts of it
        texts.append("".join(t.decode("utf-8") for t in
                             ds.map(lambda example: example[TEXT]).as_numpy_iterator()))
    return RawCorpus(*texts, version=str(builder.info.version))
