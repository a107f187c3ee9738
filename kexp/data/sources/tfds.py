"""Image-classification datasets from tensorflow-datasets (mnist, cifar10, ... any such name).

Offline, a plain `tfds.load(..., download=True)` hangs for minutes before failing; here a missing
dataset is noticed from the disk and a dead network within a few seconds, with a way out.
"""

from __future__ import annotations

import os
import threading
import urllib.error
import urllib.request

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from omegaconf import DictConfig

from kexp.data import keys
from kexp.data.raw import RawSplits
from kexp.errors import KexpError

PROBE_URL = "https://storage.googleapis.com/"  # where TFDS fetches most datasets from
PROBE_TIMEOUT_S = 3.0
# where error messages send a user whose data TFDS cannot provide (sources.tfds_text: its own)
OWN_FILES = "data=image_folder or data=npz"
EXPORT = "export the images and use data=image_folder"


def load_raw(cfg: DictConfig, seed: int) -> RawSplits:
    """train[:1-val%] / train[1-val%:] / test of data.name, fetched first when allowed."""
    del seed  # TFDS slices are deterministic; nothing random happens here
    name, data_dir, download, val_fraction = settings(cfg)
    size = keys.image_size(cfg, default=None)  # optional: only needed for varying image sizes

    builder = builder_for(name, data_dir)
    image_key, label_key = _feature_keys(builder.info, name)
    image = builder.info.features[image_key]
    if size is None and None in image.shape:
        raise KexpError(f"data.name: {name!r} has images of varying size {image.shape}; "
                        f"set +data.image_size=[H,W] to resize them")
    ensure_prepared(builder, name, download)
    splits = split_names(builder.info, name, val_fraction)
    datasets = builder.as_dataset(split=splits, shuffle_files=False)

    def to_pair(example):
        x = example[image_key]
        if size is not None:
            x = tf.image.resize(x, size)  # float32, still on the 0..255 scale of the source
        return x, example[label_key]

    train, val, test = (ds.map(to_pair, num_parallel_calls=tf.data.AUTOTUNE) for ds in datasets)
    label = builder.info.features[label_key]
    return RawSplits(
        train, val, test,
        class_names=[str(n) for n in label.names],
        auto_scale=255.0 if image.np_dtype == np.uint8 else 1.0,
        version=str(builder.info.version),
    )


def settings(cfg: DictConfig) -> tuple[str, str | None, bool, float]:
    """data.name, data.data_dir, data.download and data.val_fraction, checked."""
    data_dir = keys.get(cfg, "data_dir", None)
    return (keys.string(cfg, "name"), os.path.expanduser(str(data_dir)) if data_dir else None,
            keys.boolean(cfg, "download", True), keys.fraction(cfg, "val_fraction"))


def builder_for(name: str, data_dir: str | None, own_files: str = OWN_FILES,
             what: str = "images") -> tfds.core.DatasetBuilder:
    try:
        return tfds.builder(name, data_dir=data_dir)
    except tfds.core.DatasetNotFoundError:
        raise KexpError(f"data.name: {name!r} is not a TFDS dataset (see "
                        f"https://www.tensorflow.org/datasets/catalog/overview); for your own "
                        f"{what} use {own_files}") from None
    except (ValueError, AssertionError) as err:  # e.g. an unknown version 'mnist:9.9.9'
        raise KexpError(f"data.name: {name!r}: {str(err).splitlines()[0]}") from None


def _feature_keys(info: tfds.core.DatasetInfo, name: str) -> tuple[str, str]:
    pair = info.supervised_keys
    if not (isinstance(pair, (tuple, list)) and len(pair) == 2
            and all(isinstance(k, str) for k in pair)):
        pair = ("image", "label")  # datasets stored without supervised keys (e.g. ad hoc ones)
    features = info.features
    present = list(features.keys())
    if not (all(k in present for k in pair)
            and isinstance(features[pair[0]], tfds.features.Image)
            and isinstance(features[pair[1]], tfds.features.ClassLabel)):
        raise KexpError(f"data.name: {name!r} is not an image-classification dataset "
                        f"(kexp needs an image and a class label; it has {present}); for text "
                        f"datasets use data.source=tfds_text (as data=imdb_reviews does)")
    return pair[0], pair[1]


def ensure_prepared(builder: tfds.core.DatasetBuilder, name: str, download: bool,
                     own_files: str = OWN_FILES) -> None:
    if builder.is_prepared():
        return
    try:
        builder.as_dataset(split="train")  # tfds.testing.mock_data serves unprepared builders
        return
    except AssertionError:  # "could not find data in DIR"
        pass
    where = f"{name!r} is not in {builder.data_dir}"
    if not download:
        raise KexpError(f"data.name: {where} and data.download is false; set data.download=true "
                        f"(needs internet) or point data.data_dir (or TFDS_DATA_DIR) at a folder "
                        f"that holds it")
    if not online():
        raise KexpError(
            f"data.name: {where} and this machine cannot reach the internet to download it; "
            f"prepare it on a machine that can (`tfds build {name}` or tfds.load({name!r})), copy "
            f"the tensorflow_datasets folder here and set data.data_dir=DIR (or TFDS_DATA_DIR), "
            f"or use your own files with {own_files}")
    try:
        builder.download_and_prepare()
    except Exception as err:  # network, disk or checksum trouble, all reported the same way
        raise KexpError(f"data.name: downloading {name!r} failed "
                        f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
                        ) from None


def split_names(info: tfds.core.DatasetInfo, name: str, val_fraction: float,
                 export: str = EXPORT) -> list[str]:
    keep = round(100 * (1 - val_fraction), 4)  # TFDS accepts fractional percents (train[:87.5%])
    train, val = f"train[:{keep:g}%]", f"train[{keep:g}%:]"
    available = list(info.splits.keys())  # empty under tfds.testing.mock_data: assume train/test
    if not available or ("train" in available and "test" in available):
        return [train, val, "test"]
    if "train" in available and "validation" in available:
        return [train, val, "validation"]  # e.g. imagenette: its validation split is the test set
    raise KexpError(f"data.name: {name!r} has splits {available}; kexp needs 'train' plus 'test' "
                    f"(or 'validation'); for other layouts {export}")


def online(timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether the TFDS download host answers within `timeout` seconds (proxies honoured)."""
    answered: list[bool] = []

    def probe() -> None:
        try:
            request = urllib.request.Request(PROBE_URL, method="HEAD")
            urllib.request.urlopen(request, timeout=timeout).close()
            answered.append(True)
        except urllib.error.HTTPError:
            answered.append(True)  # an HTTP error status still means the server was reached
        except Exception:  # DNS failure, refused, timeout, proxy refusal: offline for our purpose
            pass

    # urlopen's timeout does not cover DNS resolution, which can stall far longer: bound it here.
    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return bool(answered)
