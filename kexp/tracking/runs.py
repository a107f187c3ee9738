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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from omegaconf import DictConfig

from kexp.errors import KexpError
from kexp.tracking.run_labels import run_labels
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

# the params shown beside every run: what a reader compares runs by first
KEY_PARAMS = ("optimizer.name", "optimizer.lr", "trainer.epochs", "trainer.batch_size")
TASK_PARAM = "params.task._target_"
CLASSIFICATION = "kexp.tasks.classification.Classification"  # runs from before tasks: this


@dataclass(frozen=True)
class Ranking:
    """How the runs of one task are judged: its monitor (`task.monitor`, `task.mode`) read on
    the test split. Classification: test_accuracy, higher first; regression: test_rmse, lower
    first. `extra` are the other test metrics the runs table shows."""

    monitor: str = "val_accuracy"
    higher: bool = True
    extra: tuple[str, ...] = ()
    # the per-epoch losses the curves show beside the metric (a GAN's: g_loss and d_loss)
    losses: tuple[str, ...] = ("loss",)

    @property
    def name(self) -> str:  # "accuracy", "rmse": the per-epoch metric
        return self.monitor.removeprefix("val_")

    @property
    def metric(self) -> str:  # the column runs are ranked by
        return f"metrics.test_{self.name}"

    @property
    def label(self) -> str:
        return f"test {self.name}"

    @property
    def curves(self) -> tuple[str, ...]:
        return (*(k for loss in self.losses for k in (loss, f"val_{loss}")), self.name,
                f"val_{self.name}")


CLASSIFIED = Ranking()
# test metrics the runs table shows beside the ranked one, where a task logs them (a GAN's
# real_* are the real-vs-real floor its distances are read against)
EXTRA_METRICS = ("metrics.test_mae", "metrics.test_rmse", "metrics.test_r2", "metrics.test_ece",
                 "metrics.test_kid_refcnn", "metrics.test_cs_refcnn", "metrics.real_fd_refcnn",
                 "metrics.test_label_accuracy_refcnn", "metrics.test_bits_per_token",
                 "metrics.test_perplexity")
RANK_METRIC = CLASSIFIED.metric


def ranking(runs: pd.DataFrame) -> Ranking:
    """The Ranking of `runs` (of one task), from their logged task params; a run without
    them (logged before kexp had tasks) classified."""
    if "params.task.monitor" not in runs or runs["params.task.monitor"].dropna().empty:
        return CLASSIFIED
    monitor = runs["params.task.monitor"].dropna().mode().iloc[0]
    mode = runs.get("params.task.mode", pd.Series(["max"])).dropna()
    higher = (mode.mode().iloc[0] if not mode.empty else "max") == "max"
    extra = tuple(c.removeprefix("metrics.") for c in runs.columns
                  if c in EXTRA_METRICS and c != f"metrics.test_{monitor[4:]}")
    gan = "metrics.test_g_loss" in runs and runs["metrics.test_g_loss"].notna().any()
    return Ranking(monitor, higher, extra, ("g_loss", "d_loss") if gan else ("loss",))


def by_task(runs: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """The runs split by task (`task._target_`'s class name, e.g. Classification), the
    task of the newest run first; runs logged before tasks count as classification."""
    task = runs[TASK_PARAM].fillna(CLASSIFICATION) if TASK_PARAM in runs \
        else pd.Series(CLASSIFICATION, index=runs.index)
    order = list(dict.fromkeys(task))
    return [(name.rpartition(".")[2], runs[task == name]) for name in order]


def ranked(runs: pd.DataFrame, rank: Ranking, column: str | None = None) -> pd.DataFrame:
    """`runs` best first by `column` (default: the ranking's test metric), missing last."""
    column = column or rank.metric
    if column not in runs:
        return runs
    return runs.sort_values(column, ascending=not rank.higher, na_position="last")
SEARCH_TAG = "kexp.search"  # "parent" on a search's own run (kexp/tuning/search.py)
TRIAL_TAG = "kexp.trial_id"  # on every trial's child run (kexp/tuning/trials.py)
PARENT_TAG = "mlflow.parentRunId"
READ_ADVICE = "start the server, or point logger.tracking_uri at the store the runs went to"


def default_store(overrides: Sequence[str] = ()) -> str:
    """The store `python -m kexp <overrides>` logs to: logger.tracking_uri, else
    $MLFLOW_TRACKING_URI, else sqlite:///<paths.log_dir>/mlflow.db ($KEXP_LOG_DIR, else logs)."""
    from kexp.config import compose, config_dir

    return store_uri(compose(config_dir(), "report", list(overrides)))


def store_uri(cfg: DictConfig) -> str:
    """The store of a composed config's `logger` and `paths`, by `mlflow_tracker`'s rule (kept
    there, in one place)."""
    from kexp.tracking.tracker import mlflow_tracker

    tracker = mlflow_tracker(cfg.logger, Path(cfg.paths.log_dir))
    if tracker is None:
        raise KexpError(f"logger.backend: {cfg.logger.get('backend', 'none')!r} keeps no runs "
                        "to read; use logger=mlflow")
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
                  kinds: Iterable[str] = ("run", "search"),
                  rank: Ranking | None = None) -> pd.DataFrame:
    """The runs of `kinds` (of one task) as a readable table, best first by the task's test
    metric (test accuracy, test RMSE, ...): name, status, what was trained, the key params,
    final metrics, size and cost, wall time. Trials are left to `trials()`: a search of 50
    would drown the runs."""
    rank = rank or ranking(runs)
    rows = ranked(runs[runs["kind"].isin(list(kinds))], rank)
    table = rows[["run_name", "kind", "status", "model", "dataset"]].copy()
    table["run_name"] = run_labels(rows)
    for key in params:
        table[key] = numeric(rows.get(f"params.{key}"))
    for metric in (f"test_{rank.name}", f"best_{rank.monitor}", *rank.extra, "params",
                   "flops"):
        table[metric] = rows.get(f"metrics.{metric}")
    table["wall_seconds"] = rows["wall_seconds"]
    return table.rename(columns={"run_name": "run"}).reset_index(drop=True)


def best_run(runs: pd.DataFrame, rank: Ranking | None = None) -> pd.Series | None:
    """The finished run (of one task) best by its test metric (None when no run logged it)."""
    rank = rank or ranking(runs)
    if rank.metric not in runs:
        return None
    finished = ranked(runs[(runs["status"] == "FINISHED") & runs[rank.metric].notna()], rank)
    return None if finished.empty else finished.iloc[0]


def top_runs(runs: pd.DataFrame, n: int = 5, rank: Ranking | None = None) -> list[str]:
    """The ids of the n runs (of one task) best by its test metric, best first."""
    rank = rank or ranking(runs)
    if rank.metric not in runs:
        return []
    return list(ranked(runs[runs[rank.metric].notna()], rank).head(n)["run_id"])


def metric_history(uri: str, run_ids: Iterable[str],
                   keys: Iterable[str] = CLASSIFIED.curves) -> pd.DataFrame:
    """Every logged value of `keys` for `run_ids`: columns run_id, key, epoch (1-based; kexp
    logs step = epoch index), value. One MLflow call per run and key."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    rows = [{"run_id": run_id, "key": key, "epoch": m.step + 1, "value": m.value}
            for run_id in run_ids for key in keys
            for m in _read(uri, lambda r=run_id, k=key: client.get_metric_history(r, k))]
    frame = pd.DataFrame(rows, columns=["run_id", "key", "epoch", "value"])
    return frame.sort_values(["run_id", "key", "epoch"]).reset_index(drop=True)


def artifact_bytes(uri: str, run_id: str, path: str) -> bytes | None:
    """The content of one artifact of a run (a GAN's samples_grid.png), None when it has
    none or the artifact store cannot be read."""
    import tempfile

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            with quiet_retries():
                local = client.download_artifacts(run_id, path, tmp)
        except Exception:  # missing, or a store without the file: the report goes on
            return None
        return Path(local).read_bytes()


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
    last value of the task's monitor (val_accuracy, val_rmse, ...) and val_loss, best first."""
    children = runs[(runs["parent_run_id"] == parent_run_id) & (runs["kind"] == "trial")]
    rank = ranking(children)
    table = pd.DataFrame({"trial": children.get(f"tags.{TRIAL_TAG}"),
                          "run": run_labels(children), "status": children["status"]})
    for key in searched_keys(runs, parent_run_id):
        table[key] = numeric(searched_values(children, key))
    for metric in dict.fromkeys((rank.monitor, "val_loss")):
        table[metric] = children.get(f"metrics.{metric}")
    table["wall_seconds"] = children["wall_seconds"]
    return ranked(table, rank, rank.monitor).reset_index(drop=True)


def searched_values(trials: pd.DataFrame, key: str) -> pd.Series | None:
    """The values of a searched key: `params.<key>`. A config-group choice (`optimizer`) is
    logged under its own name by kexp.tuning.trials; trials logged before that hold only the
    chosen yaml's keys, so its `name` (optimizer.name) stands in for theirs."""
    values, names = trials.get(f"params.{key}"), trials.get(f"params.{key}.name")
    if names is None or values is None:
        return names if values is None else values
    return values.fillna(names)


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
