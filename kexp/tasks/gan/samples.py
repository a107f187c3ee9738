"""`python -m kexp.generate`: images from a finished GAN run's generator, as files other
tools read: samples.npz (`images`: N x H x W x C uint8, and `labels` when conditional) and
samples.png (a grid of the first 100)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from kexp import run_dir
from kexp.errors import KexpError

SAMPLES_FILE, GRID_FILE = "samples.npz", "samples.png"
GENERATED_DIR = "generated"  # the default `out`, inside the run directory
GRID_IMAGES = 100


def generate(folder: str | Path, n: int, label: int | None = None, seed: int = 0,
             out: str | Path | None = None, unsafe_load: bool = False) -> Path:
    """Write `n` samples of the run in `folder` (all of class `label` when given) into `out`
    (default `<folder>/generated/`); returns the samples.npz path."""
    from kexp.models import load_model
    from kexp.tasks import make_task
    from kexp.tasks.gan import Gan, judge, pictures

    folder = run_dir.finished_run(folder)
    task = make_task(OmegaConf.load(folder / run_dir.CONFIG_FILE))
    if not isinstance(task, Gan):
        raise KexpError(f"run_dir: '{folder}' is a {type(task).__name__.lower()} run; "
                        f"kexp.generate samples the generator of a task=gan run")
    generator = load_model(folder / run_dir.MODEL_FILE, safe_mode=not unsafe_load,
                           compile=False)
    classes = judge.label_classes(generator)
    labels = None
    if label is not None:
        if not classes:
            raise KexpError(f"label: {label} asks for a class, but the run in '{folder}' is "
                            f"unconditional; train with task.conditional=true, or drop label=")
        if not 0 <= label < classes:
            raise KexpError(f"label: {label} is not a class of this run; expected 0 to "
                            f"{classes - 1}")
        labels = np.full(n, label, np.int32)
    images, labels = judge.sample(generator, n, seed, labels)
    pixels = pictures.to_uint8(images)
    out = Path(out) if out is not None else folder / GENERATED_DIR
    out.mkdir(parents=True, exist_ok=True)
    arrays = {"images": pixels, **({"labels": labels} if labels is not None else {})}
    np.savez(out / SAMPLES_FILE, **arrays)
    pictures.save_grid(pixels[:GRID_IMAGES], out / GRID_FILE, columns=10)
    return out / SAMPLES_FILE
