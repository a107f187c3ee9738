"""What a run leaves in its directory: config, metrics, history plot, model summary."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.json"
CURVES_FILE = "learning_curves.png"
SUMMARY_FILE = "model_summary.txt"
MODEL_FILE = "model.keras"
VOCABULARY_FILE = "vocabulary.txt"  # text runs: data.vocabulary_file=<run>/vocabulary.txt reuses it
# the MLflow run a run directory belongs to, written as soon as the run starts: `resume=<run_dir>`
# and `python -m kexp.sync` log into that run again
RUN_ID_FILE = "mlflow_run_id"


# where `python -m kexp` puts a run: conf/train.yaml's hydra.run.dir
TRAIN_RUN_DIR = "${paths.log_dir}/runs/${now:%Y-%m-%d_%H-%M-%S-%f}_${kexp_pid:}"


def save_runnable(config: dict[str, Any], path: Path) -> Path:
    """Save a resolved training config as a primary config that `python -m kexp --config-path
    <dir> --config-name <name>` runs as a new run (a tuner's best.yaml, a from_run re-run)."""
    config = {**config, "paths": {**config["paths"], "output_dir": "${hydra:runtime.output_dir}"},
              "hydra": {"run": {"dir": TRAIN_RUN_DIR}, "job": {"name": "train", "chdir": False}}}
    OmegaConf.save(OmegaConf.create(config), path)
    return path


def output_dir(cfg: DictConfig) -> Path:
    """The run directory: Hydra's when Hydra runs the job, else a new one under log_dir.

    From Python (`compose` + `train(cfg)`) there is no Hydra run dir to resolve, so kexp
    makes one the way Hydra would name it.
    """
    try:
        path = Path(cfg.paths.output_dir)
    except Exception:  # the ${hydra:...} resolver exists only inside a Hydra app
        stamp = time.strftime("%Y-%m-%d_%H-%M-%S") + f"-{time.time_ns() % 10**6:06d}"
        path = Path(cfg.paths.log_dir) / "runs" / f"{stamp}_{os.getpid()}"
        cfg.paths.output_dir = str(path.resolve())
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_config(cfg: DictConfig, run_dir: Path) -> Path:
    path = run_dir / CONFIG_FILE
    OmegaConf.save(cfg, path, resolve=True)
    return path


def read_run_id(run_dir: Path) -> str | None:
    """The MLflow run this directory belongs to (None: a new run, or one without MLflow)."""
    path = Path(run_dir) / RUN_ID_FILE
    return (path.read_text().strip() or None) if path.is_file() else None


def write_run_id(run_id: str | None, run_dir: Path) -> None:
    if run_id:
        (Path(run_dir) / RUN_ID_FILE).write_text(run_id + "\n")


def write_metrics(metrics: dict[str, Any], run_dir: Path) -> Path:
    path = run_dir / METRICS_FILE
    path.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return path


def write_summary(model: Any, run_dir: Path) -> Path:
    lines: list[str] = []
    model.summary(print_fn=lambda line, **_: lines.append(line), line_length=100)
    path = run_dir / SUMMARY_FILE
    path.write_text("\n".join(lines) + "\n")
    return path


def plot_learning_curves(history: dict[str, list[float]], run_dir: Path,
                         metric: str | None = "accuracy") -> Path:
    """Loss, the task's `metric` (accuracy, rmse, ...) and learning rate per epoch, train
    beside validation."""
    from kexp.plotting import pyplot

    plt = pyplot()

    losses = sorted(k for k in history if k.endswith("loss"))  # a GAN's d_loss, g_loss too
    panels = [("loss", losses),
              *([(metric, [metric, f"val_{metric}"])] if metric else []),
              ("learning rate", ["learning_rate"])]
    panels = [(t, [k for k in keys if history.get(k)]) for t, keys in panels]
    panels = [(t, keys) for t, keys in panels if keys]
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(4.5 * max(1, len(panels)), 3.5),
                             squeeze=False)
    for ax, (title, keys) in zip(axes[0], panels, strict=False):
        for key in keys:
            values = history[key]
            ax.plot(range(1, len(values) + 1), values, marker="o", markersize=3, label=key)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    path = run_dir / CURVES_FILE
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def finished_run(folder: str | Path) -> Path:
    """`folder` as a Path when it holds a finished run's config.yaml and model.keras."""
    from kexp.errors import KexpError

    folder = Path(folder)
    for name in (CONFIG_FILE, MODEL_FILE):
        if not (folder / name).is_file():
            raise KexpError(f"run_dir: '{folder}' has no {name}; pass the directory of a "
                            f"finished kexp run (it holds config.yaml and model.keras)")
    return folder
