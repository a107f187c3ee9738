"""An experiment's runs as pandas tables: what `python -m kexp.report` and
notebooks/compare_runs.ipynb read from MLflow, so both show the same numbers.

One row per run, with MLflow's own column names (`metrics.test_accuracy`,
`params.optimizer.lr`, `tags.model`, as `mlflow.search_runs` names them) plus a few plain
ones: `run_name`, `kind` (run, search, trial), `model`, `dataset`, `parent_run_id`,
`wall_seconds`. The store is opened with an explicit `MlflowClient`, not MLflow's
process-wide tracking URI, so reading runs never redirects a later run's logging.
No TensorFlow.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from omegaconf import DictConfig

from kexp.errors import KexpError
from kexp.tracking.store import (
    bound_http_calls,
    failure_reason,
    http_probe,
    is_http,
    quiet_retries,
    sqlite_path,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient

# the per-epoch metrics a learning curve is drawn from (logged with step = epoch index)
CURVE_METRICS = ("loss", "val_loss", "accuracy", "val_accuracy")
# the params shown beside every run: what a reader compares runs by first
KEY_PARAMS = ("optimizer.name", "optimizer.lr", "trainer.epochs", "trainer.batch_size")
RANK_METRIC = "metrics.test_accuracy"
SEARCH_TAG = "kexp.search"  # "parent" on a search's own run (kexp/tuning/search.py)
TRIAL_TAG = "kexp.trial_id"  # on every trial's child run (kexp/tuning/trials.py)
PARENT_TAG = "mlflow.parentRunId"
READ_ADVICE = "start the server, or point logger.tracking_uri at the store the runs went to"


def default_store(overrides: Sequence[str] = ()) -> str:
    """The store `python -m kexp <overrides>` logs to: logger.tracking_uri, else
    $MLFLOW_TRACKING_URI, else sqlite:///<paths.log_dir>/mlflow.db ($KEXP_LOG_DIR, else logs)."""
    from kexp.cli import compose, config_dir

    return store_uri(compose(config_dir(), "report", list(overrides)))


def store_uri(cfg: DictConfig) -> str:
    """The store of a composed config's `logger` and `paths`, by `make_tracker`'s rule (kept
    there, in one place)."""
    from kexp.tracking.tracker import MlflowTracker, make_tracker

    tracker = make_tracker(cfg.logger, Path(cfg.paths.log_dir))
    if not isinstance(tracker, MlflowTracker):
        raise KexpError("logger.backend: 'none' keeps no runs to read; use logger=mlflow")
    return tracker.tracking_uri


def connect(uri: str, experiment: str) -> tuple[MlflowClient, str]:
    """A client on `uri` and the id of `experiment` there; a KexpError saying what is wrong
    when the store is missing or unreachable or has no such experiment.

    A missing SQLite file is reported, not created: MLflow would make an empty store."""
    path = sqlite_path(uri)
    if path is not None and not path.is_file():
        raise KexpError(f"logger.tracking_uri: there is no MLflow store at {uri} (no run was "
                        "logged there); set logger.tracking_uri, or paths.log_dir to the "
                        "folder whose mlflow.db holds the runs")
    if is_http(uri):
        bound_http_calls()
        http_probe(uri, experiment, READ_ADVICE)
    from mlflow import MlflowClient

    # creating a SQLite store's tables is announced at INFO; reading never needs to say so
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
    client = MlflowClient(tracking_uri=uri)
    found = _read(uri, lambda: client.get_experiment_by_name(experiment))
    if found is None:
        names = sorted(e.name for e in _read(uri, client.search_experiments))
        raise KexpError(f"experiment: no experiment '{experiment}' in {uri}; experiments "
                        f"there: {', '.join(names) or 'none'}")
    return client, found.experiment_id


def load_runs(uri: str, experiment: str) -> pd.DataFrame:
    """Every active run of `experiment`, newest first; a KexpError when there is none."""
    client, experiment_id = connect(uri, experiment)
    found = []
    token = None
    while True:  # the client pages at 1000 runs
        page = _read(uri, lambda t=token: client.search_runs(
            [experiment_id], max_results=1000, order_by=["attributes.start_time DESC"],
            page_token=t))
        found.extend(page)
        token = page.token
        if not token:
            break
    if not found:
        raise KexpError(f"experiment: '{experiment}' in {uri} has no runs yet; train one "
                        f"with: python -m kexp logger.experiment={experiment}")
    return pd.DataFrame([_row(run) for run in found])


def _row(run) -> dict[str, object]:
    info, data = run.info, run.data
    tags = data.tags
    kind = ("search" if tags.get(SEARCH_TAG) == "parent"
            else "trial" if TRIAL_TAG in tags else "run")
    start = pd.to_datetime(info.start_time, unit="ms", utc=True)
    end = pd.to_datetime(info.end_time, unit="ms", utc=True) if info.end_time else pd.NaT
    return {"run_id": info.run_id, "run_name": info.run_name, "status": info.status,
            "kind": kind, "model": tags.get("model"), "dataset": tags.get("dataset"),
            "parent_run_id": tags.get(PARENT_TAG), "start_time": start, "end_time": end,
            "wall_seconds": (end - start).total_seconds() if end is not pd.NaT else None,
            **{f"metrics.{k}": v for k, v in data.metrics.items()},
            **{f"params.{k}": v for k, v in data.params.items()},
            **{f"tags.{k}": v for k, v in tags.items()}}


def summary_table(runs: pd.DataFrame, params: Iterable[str] = KEY_PARAMS,
                  kinds: Iterable[str] = ("run", "search")) -> pd.DataFrame:
    """The runs of `kinds` as a readable table, best test accuracy first: name, status, what
    was trained, the key params, final metrics, size and cost, wall time. Trials are left to
    `trials()`: a search of 50 would drown the runs."""
    rows = runs[runs["kind"].isin(list(kinds))]
    rows = rows.sort_values(RANK_METRIC, ascending=False, na_position="last") \
        if RANK_METRIC in rows else rows
    table = rows[["run_name", "kind", "status", "model", "dataset"]].copy()
    for key in params:
        table[key] = numeric(rows.get(f"params.{key}"))
    for metric in ("test_accuracy", "best_val_accuracy", "params", "flops"):
        table[metric] = rows.get(f"metrics.{metric}")
    table["wall_seconds"] = rows["wall_seconds"]
    return table.rename(columns={"run_name": "run"}).reset_index(drop=True)


def best_run(runs: pd.DataFrame, metric: str = RANK_METRIC) -> pd.Series | None:
    """The finished run with the highest `metric` (None when no run logged it)."""
    if metric not in runs:
        return None
    finished = runs[(runs["status"] == "FINISHED") & runs[metric].notna()]
    return None if finished.empty else finished.loc[finished[metric].idxmax()]


def top_runs(runs: pd.DataFrame, n: int = 5, metric: str = RANK_METRIC) -> list[str]:
    """The ids of the n runs with the highest `metric`, best first."""
    if metric not in runs:
        return []
    return list(runs[runs[metric].notna()].nlargest(n, metric)["run_id"])


def metric_history(uri: str, run_ids: Iterable[str],
                   keys: Iterable[str] = CURVE_METRICS) -> pd.DataFrame:
    """Every logged value of `keys` for `run_ids`: columns run_id, key, epoch (1-based; kexp
    logs step = epoch index), value. One MLflow call per run and key."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    rows = [{"run_id": run_id, "key": key, "epoch": m.step + 1, "value": m.value}
            for run_id in run_ids for key in keys
            for m in _read(uri, lambda r=run_id, k=key: client.get_metric_history(r, k))]
    frame = pd.DataFrame(rows, columns=["run_id", "key", "epoch", "value"])
    return frame.sort_values(["run_id", "key", "epoch"]).reset_index(drop=True)


def searches(runs: pd.DataFrame) -> pd.DataFrame:
    """The searches' own runs (`python -m kexp.tune`), newest first."""
    return runs[runs["kind"] == "search"]


def searched_keys(runs: pd.DataFrame, parent_run_id: str) -> list[str]:
    """The config keys the search `parent_run_id` varied, read from its `search.space.*`
    params (e.g. optimizer.lr from search.space.optimizer.lr.type)."""
    parent = runs[runs["run_id"] == parent_run_id]
    prefix, suffix = "params.search.space.", ".type"
    return [c[len(prefix):-len(suffix)] for c in parent.columns
            if c.startswith(prefix) and c.endswith(suffix) and parent[c].notna().any()]


def trials(runs: pd.DataFrame, parent_run_id: str) -> pd.DataFrame:
    """The trials of one search: trial id, status, the searched values, epochs trained and the
    last val_accuracy / val_loss, best val_accuracy first."""
    children = runs[(runs["parent_run_id"] == parent_run_id) & (runs["kind"] == "trial")]
    table = pd.DataFrame({"trial": children.get(f"tags.{TRIAL_TAG}"),
                          "run": children["run_name"], "status": children["status"]})
    for key in searched_keys(runs, parent_run_id):
        table[key] = numeric(children.get(f"params.{key}"))
    for metric in ("val_accuracy", "val_loss"):
        table[metric] = children.get(f"metrics.{metric}")
    table["wall_seconds"] = children["wall_seconds"]
    return table.sort_values("val_accuracy", ascending=False, na_position="last") \
        .reset_index(drop=True)


def numeric(values: pd.Series | None) -> pd.Series | None:
    """A param column as numbers when every value is one (MLflow keeps params as text)."""
    if values is None:
        return None
    numbers = pd.to_numeric(values, errors="coerce")
    return numbers if numbers.notna().sum() == values.notna().sum() else values


def _read(uri: str, call):
    """`call()` against the store; any failure of the store becomes one KexpError line."""
    from mlflow.exceptions import MlflowException

    try:
        with quiet_retries():
            return call()
    except MlflowException as exc:
        raise KexpError(f"logger.tracking_uri: cannot read {uri} ({failure_reason(exc)}); "
                        f"{READ_ADVICE}") from None
