"""The pictures of a GAN run: image grids, the animated GIF of training, the class histogram."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

GRID_DIR = "grids"  # epoch_001.png, ... in the run directory, one per epoch
GRID_FILE = "samples_grid.png"  # the final 10 x 10 grid
GIF_FILE = "training.gif"
HISTOGRAM_FILE = "class_histogram.png"
UPSCALE_TO = 640  # grids of tiny images (8x8 digits) are enlarged to about this many pixels


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Generator output in [-1, 1] -> uint8 pixels."""
    return np.clip(np.rint((np.asarray(images, np.float32) + 1.0) * 127.5), 0, 255
                   ).astype(np.uint8)


def grid(images: np.ndarray, columns: int | None = None, padding: int = 1) -> np.ndarray:
    """uint8 images (N, H, W, C) tiled into one (rows x columns) uint8 image, 1-pixel gaps."""
    n, height, width, channels = images.shape
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    out = np.zeros((rows * (height + padding) + padding, columns * (width + padding) + padding,
                    channels), np.uint8)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        top, left = padding + r * (height + padding), padding + c * (width + padding)
        out[top:top + height, left:left + width] = image
    return out


def save_grid(images: np.ndarray, path: Path, columns: int | None = None) -> Path:
    """A PNG of the grid, enlarged with nearest-neighbour pixels so small images stay
    visible."""
    from PIL import Image

    tiled = grid(images, columns)
    scale = max(1, UPSCALE_TO // max(tiled.shape[:2]))
    picture = Image.fromarray(tiled[..., 0] if tiled.shape[-1] == 1 else tiled)
    if scale > 1:
        picture = picture.resize((tiled.shape[1] * scale, tiled.shape[0] * scale),
                                 Image.NEAREST)
    path.parent.mkdir(parents=True, exist_ok=True)
    picture.save(path)
    return path


def save_gif(frames: Sequence[Path], path: Path, seconds_per_frame: float = 0.4) -> Path | None:
    """An animated GIF of the grids over epochs (None when there are none)."""
    from PIL import Image

    if not frames:
        return None
    pictures = [Image.open(p).convert("RGB") for p in frames]
    pictures[0].save(path, save_all=True, append_images=pictures[1:],
                     duration=int(seconds_per_frame * 1000), loop=0)
    return path


def plot_histogram(counts: np.ndarray, class_names: Sequence[str], path: Path) -> Path:
    """The reference classifier's classes of the generated samples."""
    from kexp.plotting import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(4.0, 0.45 * len(counts)), 3.2))
    ax.bar(range(len(counts)), counts / max(1, counts.sum()))
    ax.axhline(1 / max(1, len(counts)), color="grey", linestyle="--", linewidth=1,
               label="every class equally")
    ax.set_xticks(range(len(counts)), [str(n) for n in class_names], rotation=45)
    ax.set_ylabel("share of samples")
    ax.set_title("classes of the generated samples (reference classifier)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
