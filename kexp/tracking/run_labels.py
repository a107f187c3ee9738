"""Names that tell runs apart: runs sharing a run name (every `python -m kexp` run of one model
on one dataset is `<model>-<data>`) are labelled by the params whose values differ among them,
`mlp-digits (optimizer.lr=0.01)`, in the report's tables and its plots' legends. No TensorFlow.
"""

from __future__ import annotations

import pandas as pd

# params that differ between any two runs without being a setting a reader changed: where the
# run was written, and values kexp derives while training (resolved.learning_rate repeats
# optimizer.lr)
IGNORED_PREFIXES = ("params.paths.", "params.resolved.")
MAX_SHOWN = 4  # differing params named in a label; more are counted, not listed
RUN_ID_CHARS = 8  # of the run id, for runs alike in every shown param


def run_labels(runs: pd.DataFrame) -> pd.Series:
    """Each run's name, indexed like `runs`. Runs sharing a name get the params that differ
    among them: `mlp-digits (optimizer.lr=0.01)`; runs the shown params do not tell apart
    (a rerun of the same config) get their run id's first characters as well."""
    labels = runs["run_name"].astype(str)
    for name, rows in runs.groupby("run_name", sort=False):
        if len(rows) < 2:
            continue
        keys = differing(rows)
        told = {index: _described(row, keys) for index, row in rows.iterrows()}
        repeated = pd.Series(told).duplicated(keep=False)
        for index, text in told.items():
            if repeated[index] or not text:
                text = ", ".join(filter(None, [text, f"run {row_id(rows, index)}"]))
            labels[index] = f"{name} ({text})"
    return labels


def differing(runs: pd.DataFrame) -> list[str]:
    """The param columns (`params.optimizer.lr`, ...) with more than one value among `runs`,
    a param some runs lack counting as one more value. Params every run has come first (the
    settings a user changed: optimizer.lr), then those of one option only (Adam's beta_1,
    SGD's momentum, when optimizer.name differs); each part sorted by key."""
    columns = [c for c in runs.columns if c.startswith("params.")
               and not c.startswith(IGNORED_PREFIXES) and runs[c].nunique(dropna=False) > 1]
    return sorted(columns, key=lambda c: (runs[c].isna().any(), c))


def _described(row: pd.Series, keys: list[str]) -> str:
    shown = [f"{key.removeprefix('params.')}={row[key]}" for key in keys if pd.notna(row[key])]
    more = len(shown) - MAX_SHOWN
    return ", ".join(shown[:MAX_SHOWN] + ([f"+{more} more"] if more > 0 else []))


def row_id(runs: pd.DataFrame, index: object) -> str:
    return str(runs.at[index, "run_id"])[:RUN_ID_CHARS]
