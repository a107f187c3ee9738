"""Figures comparing runs, drawn from the tables of `kexp.tracking.runs`: overlaid learning
curves, and a metric against run columns (size, cost, a hyperparameter).

Figures are built with `matplotlib.figure.Figure`, not pyplot: nothing is registered with a
GUI backend (servers, CI), nothing is kept alive after the caller drops it, and a notebook
shows a returned figure once (pyplot would show it again at the end of the cell).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from kexp.tracking.run_labels import run_labels
from kexp.tracking.runs import CLASSIFIED, RANK_METRIC, Ranking

LABEL_LIMIT = 12  # points named on a scatter plot; more would be unreadable


def learning_curves(history: pd.DataFrame, labels: Mapping[str, str],
                    rank: Ranking = CLASSIFIED) -> Figure:
    """The task's metric (accuracy, rmse, ...) and the loss per epoch of every run in
    `history` (`runs.metric_history`), one colour a run, validation solid and training
    dashed; `labels` names runs by id."""
    panels = [(rank.name, f"val_{rank.name}"), *((k, f"val_{k}") for k in rank.losses)]
    fig = Figure(figsize=(5 * len(panels), 3.8))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    colours = [f"C{i % 10}" for i in range(len(labels))]
    for ax, (train_key, val_key) in zip(axes, panels, strict=True):
        for colour, (run_id, label) in zip(colours, labels.items(), strict=False):
            for key, style, name in ((val_key, "-", label), (train_key, "--", None)):
                points = history[(history["run_id"] == run_id) & (history["key"] == key)]
                if not points.empty:
                    ax.plot(points["epoch"], points["value"], style, color=colour, marker="o",
                            markersize=3, label=name)
        ax.set_title(f"{train_key} (solid: validation, dashed: training)", fontsize=10)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def scatter(runs: pd.DataFrame, columns: Sequence[str], y: str = RANK_METRIC,
            label: str | None = None) -> Figure:
    """`y` against each of `columns` (e.g. metrics.params, params.optimizer.lr), one panel a
    column, over the runs that have both. Axes spanning a decade or more are logarithmic;
    text values (an optimizer's name) are placed side by side. Points are named by the
    column `label`, else by run name, runs sharing one told apart by their params."""
    fig = Figure(figsize=(4.6 * max(1, len(columns)), 3.6))
    axes = fig.subplots(1, max(1, len(columns)), squeeze=False)[0]
    for ax, column in zip(axes, columns, strict=False):
        rows = runs[runs[y].notna() & runs[column].notna()] \
            if y in runs and column in runs else runs.iloc[0:0]
        xs, ticks = _positions(rows[column]) if not rows.empty else ([], None)
        ax.scatter(xs, rows[y] if not rows.empty else [], alpha=0.8)
        if ticks is not None:
            ax.set_xticks(range(len(ticks)), ticks)
        elif len(xs) and min(xs) > 0 and max(xs) >= 10 * min(xs):
            ax.set_xscale("log")
        if 0 < len(xs) <= LABEL_LIMIT:
            names = rows[label] if label else run_labels(rows)
            for x, value, name in zip(xs, rows[y], names, strict=True):
                ax.annotate(str(name), (x, value), fontsize=7, xytext=(3, 3),
                            textcoords="offset points")
        if rows.empty:
            ax.text(0.5, 0.5, "no run has both", ha="center", transform=ax.transAxes)
        ax.set_xlabel(_name(column))
        ax.set_ylabel(_name(y))
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _positions(values: pd.Series) -> tuple[list[float], list[str] | None]:
    """Numbers to plot; text values become their index among the sorted distinct values."""
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.notna().all():
        return [float(v) for v in numbers], None
    names = sorted({str(v) for v in values})
    return [float(names.index(str(v))) for v in values], names


def _name(column: str) -> str:
    """'metrics.test_accuracy' -> 'test_accuracy', 'params.optimizer.lr' -> 'optimizer.lr'."""
    return column.split(".", 1)[1] if column.startswith(("metrics.", "params.")) else column
