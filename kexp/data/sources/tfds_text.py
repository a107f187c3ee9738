"""Text-classification datasets from tensorflow-datasets (imdb_reviews, ag_news_subset, ...).

The same split layout and the same offline behaviour as the image source (kexp.data.sources.tfds):
train[:1-val%] / train[1-val%:] / test, a missing dataset noticed on disk, a dead network within
seconds. The texts stay strings here; kexp.data.text turns them into token ids.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_datasets as tfds
from omegaconf import DictConfig

from kexp.data import keys
from kexp.data.raw import RawSplits
from kexp.data.sources.tfds import builder_for, ensure_prepared, settings, split_names
from kexp.errors import KexpError

OWN_FILES = "data=text_csv"
EXPORT = "export the texts to a CSV file and use data=text_csv"


def load_raw(cfg: DictConfig, seed: int) -> RawSplits:
    """(text, label) splits of data.name; several text features are joined with a space."""
    del seed  # TFDS slices are deterministic; nothing random happens here
    name, data_dir, download, val_fraction = settings(cfg)

    builder = builder_for(name, data_dir, own_files=OWN_FILES, what="texts")
    text_keys, label_key = _feature_keys(cfg, builder.info, name)
    ensure_prepared(builder, name, download, own_files=OWN_FILES)
    splits = split_names(builder.info, name, val_fraction, export=EXPORT)
    datasets = builder.as_dataset(split=splits, shuffle_files=False)

    def to_pair(example):
        if len(text_keys) == 1:
            return example[text_keys[0]], example[label_key]
        return tf.strings.join([example[k] for k in text_keys], separator=" "), example[label_key]

    train, val, test = (ds.map(to_pair, num_parallel_calls=tf.data.AUTOTUNE) for ds in datasets)
    label = builder.info.features[label_key]
    return RawSplits(train, val, test, class_names=[str(n) for n in label.names],
                     version=str(builder.info.version))


def _feature_keys(cfg: DictConfig, info: tfds.core.DatasetInfo, name: str
                  ) -> tuple[list[str], str]:
    """data.text_features (null: the dataset's supervised text) and data.label_feature."""
    features = info.features
    present = list(features.keys())
    texts = [k for k in present if isinstance(features[k], tfds.features.Text)]
    labels = [k for k in present if isinstance(features[k], tfds.features.ClassLabel)]
    if not texts or not labels:
        raise KexpError(f"data.name: {name!r} is not a text-classification dataset (kexp needs a "
                        f"text and a class label; it has {present}); for image datasets use "
                        f"data.source=tfds (as data=mnist does)")
    supervised = info.supervised_keys
    if not (isinstance(supervised, (tuple, list)) and len(supervised) == 2):
        supervised = (None, None)

    text_keys = keys.get(cfg, "text_features", None)
    if text_keys is None:
        text_keys = [supervised[0]] if supervised[0] in texts else sorted(texts)[:1]
    if isinstance(text_keys, str):
        text_keys = [text_keys]
    if not isinstance(text_keys, list) or not text_keys:
        raise KexpError(f"data.text_features: {text_keys!r} must be a list of text features of "
                        f"{name!r} (one of {', '.join(sorted(texts))}) or null")
    for key in text_keys:
        if key not in texts:
            raise KexpError(f"data.text_features: {key!r} is not a text feature of {name!r} "
                            f"(text features: {', '.join(sorted(texts))})")

    label_key = keys.get(cfg, "label_feature", None)
    if label_key is None:
        label_key = supervised[1] if supervised[1] in labels else labels[0]
    if label_key not in labels:
        raise KexpError(f"data.label_feature: {label_key!r} is not a class label of {name!r} "
                        f"(class labels: {', '.join(sorted(labels))})")
    return list(text_keys), label_key
