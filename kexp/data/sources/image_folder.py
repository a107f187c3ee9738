"""Your own images: DIR/<class>/*.jpg, or DIR/train/<class>/ + DIR/test/<class>/.

Every image is decoded and resized once, up front, with Pillow in a thread pool: one code path
reads every common format, a broken file is reported by name before training starts, and the
decoded uint8 arrays are what the pipeline would cache anyway.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from omegaconf import DictConfig
from PIL import Image, ImageOps

from kexp.data import keys
from kexp.data.raw import RawSplits, from_arrays
from kexp.data.sources.split import holdout
from kexp.errors import KexpError

EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff")


def load_raw(cfg: DictConfig, seed: int) -> RawSplits:
    """List, decode and split the images under data.path."""
    root = keys.existing_path(cfg, "path", "dir")
    size = keys.image_size(cfg)
    channels = keys.channels(cfg)
    val_fraction = keys.fraction(cfg, "val_fraction")
    subdirs = _subdirs(root)
    if "train" in subdirs:
        extra = sorted(set(subdirs) - {"train", "test"})
        if extra:
            raise KexpError(f"data.path: '{root}' has train/ plus {extra}; expected only train/ "
                            f"and test/ (validation is carved from train by data.val_fraction)")
        class_names = _class_names(root / "train")
        files, labels = _list(root / "train", class_names)
        if "test" in subdirs:
            test_files, test_labels = _list(root / "test", class_names, require_all=False)
        else:
            files, labels, test_files, test_labels = _hold_out_test(cfg, files, labels, seed)
    else:
        class_names = _class_names(root)
        files, labels = _list(root, class_names)
        files, labels, test_files, test_labels = _hold_out_test(cfg, files, labels, seed)
    x = _decode_all(files, size, channels)
    train, val = holdout(labels, val_fraction, seed, "val_fraction")
    # shuffle the user's test split too, so that data.subset still sees every class
    test_order = np.random.default_rng(seed).permutation(len(test_files))
    x_test = _decode_all([test_files[i] for i in test_order], size, channels)
    return from_arrays(
        (x[train], labels[train]),
        (x[val], labels[val]),
        (x_test, test_labels[test_order]),
        class_names=class_names,
        auto_scale=255.0,
    )


def _subdirs(path: Path) -> list[str]:
    # hidden folders (.ipynb_checkpoints, .git, ...) are never classes
    return sorted(p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _class_names(path: Path) -> list[str]:
    names = _subdirs(path)
    if not names:
        raise KexpError(f"data.path: '{path}' has no class subfolders; expected "
                        f"{path}/<class>/<images> with at least 2 classes")
    if len(names) < 2:
        raise KexpError(f"data.path: '{path}' has only 1 class folder ({names[0]!r}); "
                        f"a classifier needs at least 2")
    return names


def _list(root: Path, class_names: list[str], require_all: bool = True):
    """(files, labels) under root/<class>/, recursively, in a stable order."""
    present = _subdirs(root)
    unknown = sorted(set(present) - set(class_names))
    if unknown:
        raise KexpError(f"data.path: '{root}' has class folder(s) {unknown} that the training "
                        f"split lacks (classes: {class_names})")
    files: list[str] = []
    labels: list[int] = []
    for label, name in enumerate(class_names):
        if name not in present and not require_all:
            continue
        found = _images_in(root / name)
        if not found:
            raise KexpError(f"data.path: class folder '{root / name}' has no images "
                            f"({', '.join(EXTENSIONS)})")
        files += found
        labels += [label] * len(found)
    if not files:
        raise KexpError(f"data.path: '{root}' has no images")
    return files, np.asarray(labels, dtype=np.int32)


def _images_in(folder: Path) -> list[str]:
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found += [os.path.join(dirpath, f) for f in sorted(filenames)
                  if f.lower().endswith(EXTENSIONS) and not f.startswith(".")]
    return found


def _hold_out_test(cfg: DictConfig, files: list[str], labels: np.ndarray, seed: int):
    rest, test = holdout(labels, keys.fraction(cfg, "test_fraction"), seed, "test_fraction")
    return [files[i] for i in rest], labels[rest], [files[i] for i in test], labels[test]


def _decode_all(files: list[str], size: tuple[int, int], channels: int) -> np.ndarray:
    out = np.empty((len(files), size[0], size[1], channels), dtype=np.uint8)

    def decode(i: int) -> None:
        out[i] = _read_image(files[i], size, channels)

    # Pillow releases the GIL while decoding and resizing, so threads scale with cores.
    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) + 1)) as pool:
        list(pool.map(decode, range(len(files))))
    return out


def _read_image(path: str, size: tuple[int, int], channels: int) -> np.ndarray:
    height, width = size
    try:
        with Image.open(path) as img:
            # JPEG only: decode at 1/2..1/8 scale when that still covers the target (much faster)
            img.draft("L" if channels == 1 else "RGB", (max(size), max(size)))
            img = ImageOps.exif_transpose(img)
            img = _to_8bit(img).convert("L" if channels == 1 else "RGB")
            img = img.resize((width, height), Image.Resampling.BILINEAR)
            return np.asarray(img, dtype=np.uint8).reshape(height, width, channels)
    except KexpError:
        raise
    except Exception as err:  # Pillow raises many types for broken files
        raise KexpError(f"data.path: cannot read image '{path}' ({type(err).__name__}: {err})"
                        ) from None


def _to_8bit(img: Image.Image) -> Image.Image:
    if img.mode == "P" and "transparency" in img.info:
        return img.convert("RGBA")  # avoids Pillow's palette-transparency warning
    if img.mode in ("I", "I;16", "I;16B", "I;16L"):
        # 16-bit greys: convert("L") would clip everything above 255 to white
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if arr.max() > 255 else 255.0
        return Image.fromarray(np.clip(arr / top * 255.0, 0, 255).astype(np.uint8))
    return img
