"""Your own arrays: data.path=FILE.npz holding x_train, y_train, x_test, y_test."""

from __future__ import annotations

import zipfile

import numpy as np
from omegaconf import DictConfig

from kexp.data import keys
from kexp.data.raw import RawSplits, from_arrays
from kexp.data.sources.split import holdout
from kexp.errors import KexpError

ARRAYS = ("x_train", "y_train", "x_test", "y_test")


def load_raw(cfg: DictConfig, seed: int) -> RawSplits:
    """Check the arrays, hold out data.val_fraction of the training set (stratified)."""
    val_fraction = keys.fraction(cfg, "val_fraction")
    path = keys.existing_path(cfg, "path", "file")
    arrays = _read(path)
    x_train, x_test = (_images(path, name, arrays[name]) for name in ("x_train", "x_test"))
    y_train, y_test = (_labels(path, name, arrays[name]) for name in ("y_train", "y_test"))
    for x_name, x, y_name, y in (("x_train", x_train, "y_train", y_train),
                                 ("x_test", x_test, "y_test", y_test)):
        if len(x) != len(y):
            raise KexpError(f"data.path: '{path}': {x_name} has {len(x)} examples "
                            f"but {y_name} has {len(y)} labels")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise KexpError(f"data.path: '{path}': x_train images are {x_train.shape[1:]} "
                        f"but x_test images are {x_test.shape[1:]}")
    num_classes = int(y_train.max()) + 1
    if num_classes < 2:
        raise KexpError(f"data.path: '{path}': y_train has only class 0; a classifier needs "
                        f"labels of at least 2 classes (0..K-1)")
    if y_test.max() >= num_classes:
        raise KexpError(f"data.path: '{path}': y_test has label {int(y_test.max())} but y_train "
                        f"labels only go up to {num_classes - 1} (labels must be 0..K-1)")
    train, val = holdout(y_train, val_fraction, seed, "val_fraction")
    return from_arrays(
        (x_train[train], y_train[train]),
        (x_train[val], y_train[val]),
        (x_test, y_test),
        class_names=[str(c) for c in range(num_classes)],
        # the yaml documents `scale: auto` as 255 for uint8 and 1 (already scaled) otherwise
        auto_scale=255.0 if x_train.dtype == np.uint8 else 1.0,
    )


def _read(path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            present = list(npz.files)
            missing = [name for name in ARRAYS if name not in present]
            if missing:
                raise KexpError(f"data.path: '{path}' lacks array(s) {', '.join(missing)} "
                                f"(has: {', '.join(present) or 'none'}; "
                                f"needs {', '.join(ARRAYS)})")
            return {name: npz[name] for name in ARRAYS}
    except (AttributeError, TypeError):
        # np.load returned a bare array (.npy), which has no .files / is no context manager
        raise KexpError(f"data.path: '{path}' is not an .npz archive; save one with "
                        f"np.savez(path, {'=..., '.join(ARRAYS)}=...)") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:  # EOFError: empty file
        raise KexpError(f"data.path: '{path}' is not a readable .npz file ({err})") from None


def _images(path, name: str, x: np.ndarray) -> np.ndarray:
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
        raise KexpError(f"data.path: '{path}': {name} has dtype {x.dtype}; images must be numeric")
    if x.ndim == 3:  # grey N x H x W: give it the channel axis every model expects
        x = x[..., np.newaxis]
    if x.ndim != 4 or 0 in x.shape[1:]:
        raise KexpError(f"data.path: '{path}': {name} has shape {x.shape}; "
                        f"expected N x H x W or N x H x W x C")
    if np.issubdtype(x.dtype, np.inexact) and not _all_finite(x):
        # a NaN pixel makes every loss NaN: name the file, not the first epoch
        raise KexpError(f"data.path: '{path}': {name} holds NaN or infinite values")
    return x


def _all_finite(x: np.ndarray, chunk: int = 4096) -> bool:
    """np.isfinite(x).all() in slices, so a large array never gets a same-sized bool twin."""
    return all(np.isfinite(x[i:i + chunk]).all() for i in range(0, len(x), chunk))


def _labels(path, name: str, y: np.ndarray) -> np.ndarray:
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise KexpError(f"data.path: '{path}': {name} has shape {y.shape}; expected one integer "
                        f"class id per example (one-hot? use np.argmax(y, axis=1))")
    if y.size == 0:
        raise KexpError(f"data.path: '{path}': {name} is empty")
    integral = np.issubdtype(y.dtype, np.integer) or (
        np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y)) and np.all(y == np.round(y))
    )
    if not integral:
        raise KexpError(f"data.path: '{path}': {name} must hold integer class ids 0..K-1 "
                        f"(got dtype {y.dtype})")
    if y.min() < 0:
        raise KexpError(f"data.path: '{path}': {name} has negative label {int(y.min())}; "
                        f"labels must be 0..K-1")
    return y.astype(np.int32)
