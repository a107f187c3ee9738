"""The reference classifier a GAN run is judged by: kexp's own small CNN, trained once per
data set by the classification task and cached under `<paths.log_dir>/reference_classifiers/`
keyed by the data's fingerprint, so every GAN run on the same data is judged by the same
network (its distances compare across runs; never with published FIDs).

`features` turns it into what the distances read: its penultimate features (the input of the
classification head) and its softmax.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

if TYPE_CHECKING:
    import keras

    from kexp.data import DataBundle

log = logging.getLogger("kexp")

NAME = "refcnn"  # in the metric names: fd_refcnn, kid_refcnn, cs_refcnn
CACHE_DIR = "reference_classifiers"
MODEL_FILE, INFO_FILE = "model.keras", "info.json"
PATIENCE = 3  # epochs without a better val_accuracy before its training stops


def location(log_dir: str | Path, data_cfg: DictConfig, fingerprint: str | None) -> Path:
    """Where the classifier of these data lives: their fingerprint (the numbers the models
    read), else the data config itself."""
    key = fingerprint or hashlib.sha256(
        OmegaConf.to_yaml(data_cfg, resolve=True).encode()).hexdigest()[:16]
    name = str(data_cfg.get("name") or data_cfg.get("source") or "data")
    return Path(log_dir) / CACHE_DIR / f"{name}-{key}"


def ensure(folder: Path, data: DataBundle, epochs: int, seed: int) -> dict[str, Any]:
    """The classifier in `folder`, trained now if it is not there yet; returns its info
    (test accuracy, epochs, data). Written to a temporary folder and renamed, so a killed
    training or two processes of a search never leave half a classifier."""
    info_path = folder / INFO_FILE
    if info_path.is_file() and (folder / MODEL_FILE).is_file():
        return json.loads(info_path.read_text())
    import keras

    from kexp.config import config_dir
    from kexp.tasks.classification import Classification

    log.info("training the reference classifier for %s (once; cached in %s)",
             data.spec.name, folder)
    keras.utils.set_random_seed(seed)
    task_cfg = OmegaConf.load(config_dir() / "task" / "classification.yaml")
    task = Classification({k: v for k, v in OmegaConf.to_container(task_cfg).items()
                           if k != "_target_"})
    model_cfg = OmegaConf.load(config_dir() / "model" / "cnn.yaml")
    model = task.build_model(model_cfg, data.spec)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), **task.compile_args(data.spec))
    stop = keras.callbacks.EarlyStopping("val_accuracy", mode="max", patience=PATIENCE,
                                         restore_best_weights=True)
    history = model.fit(data.train, validation_data=data.val, epochs=epochs, callbacks=[stop],
                        verbose=0, shuffle=False).history  # the pipeline shuffles
    test = model.evaluate(data.test, verbose=0, return_dict=True)
    info = {"model": "cnn", "data": data.spec.name, "fingerprint": data.spec.fingerprint,
            "epochs": len(history["loss"]), "test_accuracy": round(float(test["accuracy"]), 4),
            "num_train": data.spec.num_train, "num_test": data.spec.num_test}
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save(tmp / MODEL_FILE)
    (tmp / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
    try:
        tmp.rename(folder)
    except OSError:  # another process finished first: use theirs
        shutil.rmtree(tmp, ignore_errors=True)
        return json.loads(info_path.read_text())
    log.info("reference classifier: test accuracy %.4f after %d epochs", info["test_accuracy"],
             info["epochs"])
    return info


def features(folder: Path) -> keras.Model:
    """The cached classifier as a model from images to (penultimate features, softmax)."""
    import keras

    from kexp.models import load_model

    classifier = load_model(folder / MODEL_FILE, compile=False)
    head = classifier.get_layer("logits")
    return keras.Model(classifier.input, [head.input, classifier.output],
                       name=f"{NAME}_features")
