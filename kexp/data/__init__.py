"""Data for kexp: `load(data_cfg, global_batch_size, seed)` returns a DataBundle.

Each `data.source` lives in its own module, imported only when used (tensorflow-datasets alone
takes seconds to import); all of them go through the same pipeline (kexp.data.pipeline).
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, OmegaConf

from kexp.config import allowlist_of, import_target, is_int
from kexp.data import keys
from kexp.data.bundle import DataBundle, DataSpec
from kexp.errors import KexpError

__all__ = ["DataBundle", "DataSpec", "SOURCES", "load"]

SOURCES = {
    "digits": "kexp.data.sources.digits",
    "tfds": "kexp.data.sources.tfds",
    "npz": "kexp.data.sources.npz",
    "image_folder": "kexp.data.sources.image_folder",
    "tfds_text": "kexp.data.sources.tfds_text",
    "text_csv": "kexp.data.sources.text_csv",
    "diabetes": "kexp.data.sources.diabetes",
    "table": "kexp.data.sources.table",
    "text_file": "kexp.data.sources.text_file",
    "tiny_shakespeare": "kexp.data.sources.tiny_shakespeare",
    "parallel_text": "kexp.data.sources.parallel_text",
    "tfds_translation": "kexp.data.sources.tfds_translation",
    "sort_numbers": "kexp.data.sources.point_sets",
    "convex_hull": "kexp.data.sources.point_sets",
}


def load(
    data_cfg: DictConfig | dict[str, Any], global_batch_size: int, seed: int | None
) -> DataBundle:
    """Load the splits that `data_cfg` (the `data` config group) describes, batched and ready.

    `seed` fixes the held-out splits, the shuffle order and the augmentation. With seed None the
    order is random, but splits still use seed 0: evaluating later must see the same test split.
    """
    cfg = data_cfg if isinstance(data_cfg, DictConfig) else OmegaConf.create(data_cfg)
    load_raw = source_function(cfg)
    if not is_int(global_batch_size) or global_batch_size < 1:
        raise KexpError(f"global_batch_size: {global_batch_size!r} must be a positive integer")
    if seed is not None and not is_int(seed):
        raise KexpError(f"seed: {seed!r} must be an integer or null")
    from kexp.data import pipeline  # TensorFlow loads here, not when kexp.data is imported
    from kexp.data.raw import RawCorpus, RawPairs, RawPoints

    split_seed = 0 if seed is None else seed % 2**32  # scikit-learn takes 0..2**32-1 only
    raw = load_raw(cfg, split_seed)
    if keys.boolean(cfg, "train_on_val", False):
        # a final refit (kexp.tune's tuner.retrain_best): the validation split joins the
        # training split; it is still reported as val, on examples the model has now seen
        # a corpus (kexp.data.raw.RawCorpus): the val text follows the train text, as it
        # does in the corpus; pairs (RawPairs): lists; point sets (RawPoints): PointSets;
        # otherwise datasets
        joined = raw.train + raw.val if isinstance(raw, (RawCorpus, RawPairs, RawPoints)) \
            else raw.train.concatenate(raw.val)
        raw = dataclasses.replace(raw, train=joined)
    return pipeline.build(raw, cfg, global_batch_size, seed)


def source_function(cfg: DictConfig) -> Callable[[DictConfig, int], Any]:
    """The function that reads the raw splits: `data._target_` (a user's own source, e.g.
    `mypkg.data.load_raw`, allowlisted like a model's builder) or the `load_raw` of the
    built-in `data.source`. It takes the data config and the split seed and returns
    `kexp.data.raw.RawSplits` (a language model's corpus: `kexp.data.raw.RawCorpus`)."""
    target = cfg.get("_target_")
    if target is not None:
        return import_target("data._target_", target, allowlist_of(cfg))
    source = cfg.get("source")
    if not isinstance(source, str) or source not in SOURCES:
        raise KexpError(f"data.source: {source!r} is not one of {', '.join(SOURCES)}")
    return importlib.import_module(SOURCES[source]).load_raw
