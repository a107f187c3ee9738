"""Pictures of a search: the objective against each searched key, and parallel coordinates."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kexp.plotting import pyplot
from kexp.tuning.space import Param

OBJECTIVE_PLOT = "objective_vs_params.png"
PARALLEL_PLOT = "parallel_coordinates.png"



def _axis_values(param: Param, values: Sequence[Any]) -> tuple[list[float], list[str] | None]:
    """Numbers to plot for one key; categories (choices, bools) become their index."""
    if param.type in ("choice", "bool"):
        labels = [str(v) for v in (param.values or (False, True))]
        return [float(labels.index(str(v))) for v in values], labels
    return [float(v) for v in values], None


def plot_trials(params: Sequence[Param], trials: Sequence[tuple[dict[str, Any], float]],
                objective: str, out: Path) -> list[Path]:
    """Two figures from finished trials ((values, score) pairs); [] when there is none."""
    if not trials:
        return []
    plt = pyplot()
    scores = [score for _, score in trials]

    cols = min(3, len(params))
    rows = math.ceil(len(params) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    for ax, param in zip(axes.flat, params, strict=False):
        xs, labels = _axis_values(param, [values.get(param.key) for values, _ in trials])
        ax.scatter(xs, scores, alpha=0.8)
        if labels:
            ax.set_xticks(range(len(labels)), labels)
        elif param.sampling != "linear":
            ax.set_xscale("log")
        ax.set_xlabel(param.key)
        ax.set_ylabel(objective)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(params):]:
        ax.set_visible(False)
    fig.tight_layout()
    scatter = out / OBJECTIVE_PLOT
    fig.savefig(scatter, dpi=100)
    plt.close(fig)

    # parallel coordinates: every key scaled to [0, 1] (log keys on a log scale), then the score
    columns = []
    for param in params:
        xs, _ = _axis_values(param, [values.get(param.key) for values, _ in trials])
        if param.sampling != "linear" and param.type in ("float", "int"):
            xs = [math.log10(x) for x in xs]
        low, high = min(xs), max(xs)
        columns.append([(x - low) / (high - low) if high > low else 0.5 for x in xs])
    low, high = min(scores), max(scores)
    columns.append([(s - low) / (high - low) if high > low else 0.5 for s in scores])
    fig, ax = plt.subplots(figsize=(1.8 * len(columns) + 2, 4))
    cmap = plt.get_cmap("viridis")
    for i, score in enumerate(scores):
        shade = (score - low) / (high - low) if high > low else 1.0
        ax.plot(range(len(columns)), [c[i] for c in columns], color=cmap(shade), alpha=0.8)
    ax.set_xticks(range(len(columns)), [p.key for p in params] + [objective], rotation=20)
    ax.set_yticks([])
    ax.set_title(f"{len(scores)} trials, colour = {objective}")
    fig.tight_layout()
    parallel = out / PARALLEL_PLOT
    fig.savefig(parallel, dpi=100)
    plt.close(fig)
    return [scatter, parallel]
