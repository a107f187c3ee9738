"""`python -m kexp.report`: one self-contained HTML (or Markdown) file of an experiment's runs,
read from the real runs of tests/experiment_runs.py; a bad store or experiment is one line."""

from __future__ import annotations

import base64
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from kexp.cli import compose, config_dir
from kexp.cli.report import report, write_report
from kexp.errors import KexpError
from tests.conftest import run_kexp
from tests.experiment_runs import (  # noqa: F401
    EMPTY_EXPERIMENT,
    RUNS,
    SEARCH,
    TRIALS,
    experiment_logs,
    store_uri,
)

PNG = b"\x89PNG\r\n\x1a\n"


def run_report(args: list[str], cwd: Path, log_dir: Path) -> subprocess.CompletedProcess:
    """`python -m kexp.report <args>` with $KEXP_LOG_DIR=log_dir, failing if TensorFlow was
    imported (the report reads MLflow only)."""
    code = (f"import sys; sys.argv = ['kexp.report', *{args!r}]\nfrom kexp.cli.report import main\n"
            "try:\n    main()\nfinally:\n"
            "    assert 'tensorflow' not in sys.modules, 'TensorFlow was imported'\n")
    env = {**os.environ, "KEXP_LOG_DIR": str(log_dir)}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def final_metrics(log_dir: Path) -> dict[str, float]:
    """test_accuracy of every training run, by run name, as MLflow has it."""
    client = mlflow.MlflowClient(store_uri(log_dir))
    found = client.search_runs([client.get_experiment_by_name("kexp").experiment_id])
    return {r.info.run_name: r.data.metrics["test_accuracy"] for r in found
            if "test_accuracy" in r.data.metrics}


def test_html_report_of_the_default_store_is_one_self_contained_file(
        tmp_path, experiment_logs):  # noqa: F811
    done = run_report(["experiment=kexp"], tmp_path, experiment_logs)
    assert done.returncode == 0, done.stderr[-3000:]
    out = experiment_logs / "reports" / "kexp.html"  # the default: <paths.log_dir>/reports/
    accuracy = final_metrics(experiment_logs)
    best = max(accuracy, key=accuracy.get)
    assert done.stdout.strip() == (f"kexp.report: wrote {out} (5 runs; best {best} "
                                   f"test_accuracy={accuracy[best]:.4f})")
    page = out.read_text()
    for name in [*RUNS, SEARCH, *TRIALS]:
        assert f">{name}<" in page, name  # a table cell of its own
    for name, value in accuracy.items():
        shown = re.escape(f"{value:.4g}")
        cell = rf"<tr><td>{re.escape(name)}</td>(<td>[^<]*</td>)*?<td>{shown}</td>"
        assert re.search(cell, page), name  # in its own row
    assert f"<p class=\"meta\">{best} (run " in page  # the best run's section names it
    images = re.findall(r'<img alt="([\w-]+)" src="data:image/png;base64,([^"]+)"', page)
    assert [name for name, _ in images] == ["best_run", "top_runs", "size_and_cost", "search_1"]
    assert all(base64.b64decode(data).startswith(PNG) for _, data in images)
    # nothing to fetch: no script, stylesheet, or remote image
    assert not re.search(r"<script|<link|src=\"(?!data:)", page)


def test_markdown_report_writes_its_plots_beside_it(tmp_path, experiment_logs):  # noqa: F811
    out = tmp_path / "out" / "kexp.md"
    cfg = compose(config_dir(), "report", [f"logger.tracking_uri={store_uri(experiment_logs)}",
                                           "format=md", f"out={out}", "top=1"])
    assert report(cfg).startswith(f"kexp.report: wrote {out} (5 runs; best ")
    text = out.read_text()
    header = "| run | kind | status | model | dataset | optimizer.name | optimizer.lr |"
    assert header in text
    assert all(f"| {name} |" in text for name in [*RUNS, SEARCH, *TRIALS])
    links = re.findall(r"!\[[\w-]+\]\(([^)]+)\)", text)
    # top=1: the best run's curves only, no overlay of the top runs
    assert links == [f"kexp_files/{n}.png" for n in ("best_run", "size_and_cost", "search_1")]
    assert all((out.parent / link).read_bytes().startswith(PNG) for link in links)


def test_a_missing_store_is_one_line_and_is_not_created(tmp_path):
    done = run_kexp([], tmp_path, module="kexp.report")
    store = f"sqlite:///{(tmp_path / 'logs').resolve()}/mlflow.db"
    assert done.returncode == 2
    assert done.stderr == (f"kexp: error: logger.tracking_uri: there is no MLflow store at "
                           f"{store} (no run was logged there); set logger.tracking_uri, or "
                           f"paths.log_dir to the folder whose mlflow.db holds the runs\n")
    assert not (tmp_path / "logs" / "mlflow.db").exists()


def test_an_unknown_experiment_is_one_line_naming_the_ones_there(tmp_path,
                                                                 experiment_logs):  # noqa: F811
    done = run_kexp(["experiment=nope"], tmp_path, module="kexp.report",
                    env={"KEXP_LOG_DIR": str(experiment_logs)})
    assert done.returncode == 2
    assert done.stderr == (f"kexp: error: experiment: no experiment 'nope' in "
                           f"{store_uri(experiment_logs)}; experiments there: Default, "
                           f"{EMPTY_EXPERIMENT}, kexp\n")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(("overrides", "message"), [
    (["logger.experiment=empty"], "experiment: 'empty' in sqlite:///{db} has no runs yet; train "
                                  "one with: python -m kexp logger.experiment=empty"),
    (["format=pdf"], "format: 'pdf' is not valid; expected one of html, md"),
    (["top=0"], "top: 0 is not valid; expected a positive integer"),
    (["logger=none"], "logger.backend: 'none' keeps no runs to read; use logger=mlflow"),
    (["logger.tracking_uri=http://127.0.0.1:{port}"],
     "logger.tracking_uri: cannot reach http://127.0.0.1:{port} (connection refused); start the "
     "server, or point logger.tracking_uri at the store the runs went to"),
], ids=["empty-experiment", "format", "top", "logger-none", "server-down"])
def test_user_errors_say_what_is_wrong(experiment_logs, monkeypatch, overrides,  # noqa: F811
                                       message):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    values = {"db": f"{experiment_logs.resolve()}/mlflow.db", "port": _closed_port()}
    cfg = compose(config_dir(), "report", [f"paths.log_dir={experiment_logs}",
                                           *(o.format(**values) for o in overrides)])
    with pytest.raises(KexpError) as raised:
        report(cfg)
    assert str(raised.value) == message.format(**values)


def test_names_are_escaped_and_a_search_cut_off_before_its_first_trial_is_said(tmp_path):
    """Run names are whatever a user typed (run_name=...): the page shows them, never runs
    them. A search killed before any trial has a parent run and nothing else; a run killed
    before testing has no test accuracy."""
    frame = pd.DataFrame([
        {"run_id": "r1", "run_name": "<script>alert(1)</script>", "status": "KILLED",
         "kind": "run", "model": "mlp", "dataset": "digits", "parent_run_id": None,
         "wall_seconds": 2.0, "metrics.val_accuracy": 0.5},
        {"run_id": "p1", "run_name": "tune-x", "status": "KILLED", "kind": "search",
         "model": "mlp", "dataset": "digits", "parent_run_id": None, "wall_seconds": None,
         "params.search.space.optimizer.lr.type": "float"}])
    out = write_report(frame, store_uri(tmp_path), "e", tmp_path / "e.html", top=1)
    page = out.read_text()
    assert "<script" not in page and "<td>&lt;script&gt;alert(1)&lt;/script&gt;</td>" in page
    assert "<h3>tune-x (KILLED)</h3>" in page and "No trial has logged a run yet." in page
    assert "searched: optimizer.lr" in page
    assert "No finished run logged test_accuracy yet." in page
    assert not (tmp_path / "mlflow.db").exists()  # nothing more to read than the frame


def log_runs(log_dir: Path, runs: list[dict]) -> pd.DataFrame:
    """Finished runs made with MLflow's client as kexp logs them (name, params, tags, final
    metrics, val_accuracy per epoch); `parent` names an earlier run by its name. The store's
    runs as `kexp.tracking.runs.load_runs` reads them."""
    from kexp.tracking import runs as tables

    client = mlflow.MlflowClient(store_uri(log_dir))
    experiment = client.create_experiment("e")
    ids: dict[str, str] = {}
    for run in runs:
        tags = {**run.get("tags", {}), **({"mlflow.parentRunId": ids[run["parent"]]}
                                          if "parent" in run else {})}
        made = client.create_run(experiment, run_name=run["name"], tags=tags)
        ids[run["name"]] = run_id = made.info.run_id
        for key, value in run.get("params", {}).items():
            client.log_param(run_id, key, value)
        for key, value in run.get("metrics", {}).items():
            client.log_metric(run_id, key, value)
        for step, value in enumerate(run.get("curve", [])):
            client.log_metric(run_id, "val_accuracy", value, step=step)
        client.set_terminated(run_id)
    return tables.load_runs(store_uri(log_dir), "e")


def test_a_search_over_a_config_group_shows_and_plots_its_choices(tmp_path):
    """`optimizer: {type: choice}` swaps optimizer/<choice>.yaml in: kexp.tuning.trials logs
    the choice as the param `optimizer`; a trial logged before that has its optimizer.name."""
    from kexp.tracking import run_plots, runs

    search = {"name": "tune-x", "tags": {"kexp.search": "parent"},
              "params": {"search.space.optimizer.type": "choice",
                         "search.space.optimizer.values": "['adam', 'sgd']"}}
    trials = [{"name": f"trial-{i}", "parent": "tune-x", "tags": {"kexp.trial_id": str(i)},
               "params": {**choice, "optimizer.name": name, "optimizer.lr": lr},
               "metrics": {"val_accuracy": score}}
              for i, (choice, name, lr, score) in enumerate([
                  ({"optimizer": "adam"}, "adam", "0.001", 0.7),
                  ({"optimizer": "sgd"}, "sgd", "0.1", 0.9),
                  ({}, "sgd", "0.1", 0.8)])]  # an older trial: no `optimizer` param
    frame = log_runs(tmp_path, [search, *trials])
    parent = frame.loc[frame["run_name"] == "tune-x", "run_id"].item()
    assert runs.searched_keys(frame, parent) == ["optimizer"]
    table = runs.trials(frame, parent)
    assert list(table["optimizer"]) == ["sgd", "sgd", "adam"]  # best val_accuracy first
    assert list(table["run"]) == ["trial-1", "trial-2", "trial-0"]
    fig = run_plots.scatter(table, ["optimizer"], y="val_accuracy", label="run")
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_xticklabels()] == ["adam", "sgd"]
    assert "no run has both" not in [t.get_text() for t in ax.texts]
    page = write_report(frame, store_uri(tmp_path), "e", tmp_path / "e.html").read_text()
    assert "searched: optimizer" in page and "<th>optimizer</th>" in page
    assert re.search(r"<td>trial-0</td><td>FINISHED</td><td>adam</td>", page)


def test_runs_sharing_a_name_are_told_apart_by_the_params_that_differ(tmp_path, monkeypatch):
    """In the runs table, the scatter's point names and the legend of the top runs' curves:
    the params that differ among the runs of one name (not their output dirs), and the run
    id where no param does (a rerun)."""
    from kexp.tracking import run_plots, runs

    def run(name: str, lr: str, out: str, accuracy: float) -> dict:
        return {"name": name, "params": {"optimizer.lr": lr, "paths.output_dir": out,
                                         "resolved.learning_rate": lr, "model.width": "1.0"},
                "metrics": {"test_accuracy": accuracy, "params": 100.0, "flops": 200.0},
                "curve": [accuracy / 2, accuracy]}

    frame = log_runs(tmp_path, [run("mlp-digits", "0.01", "a", 0.9),
                                run("mlp-digits", "0.003", "b", 0.8),
                                run("mlp-digits", "0.003", "c", 0.7),
                                run("other", "0.003", "d", 0.6)])
    ids = dict(zip(frame["metrics.test_accuracy"], frame["run_id"], strict=True))
    expected = ["mlp-digits (optimizer.lr=0.01)",
                f"mlp-digits (optimizer.lr=0.003, run {ids[0.8][:8]})",
                f"mlp-digits (optimizer.lr=0.003, run {ids[0.7][:8]})", "other"]
    assert list(runs.summary_table(frame)["run"]) == expected

    legends: list[list[str]] = []

    def curves(*args, **kwargs):
        fig = original(*args, **kwargs)
        legend = fig.axes[0].get_legend()
        legends.append([t.get_text() for t in legend.get_texts()] if legend else [])
        return fig

    original = run_plots.learning_curves
    monkeypatch.setattr(run_plots, "learning_curves", curves)
    page = write_report(frame, store_uri(tmp_path), "e", tmp_path / "e.html", top=3)
    assert legends == [["mlp-digits"], expected[:3]]  # the best run alone, then the top 3
    assert all(f"<td>{label}</td>" in page.read_text() for label in expected)
    points = run_plots.scatter(frame, ["metrics.params"], y="metrics.test_accuracy")
    assert sorted(t.get_text() for t in points.axes[0].texts) == sorted(expected)


@pytest.mark.slow
def test_a_real_optimizer_search_logs_each_trials_choice(tmp_path, monkeypatch):
    from hydra import compose, initialize_config_module

    from kexp.tracking import runs
    from kexp.tuning.search import tune

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    base = ["trainer.epochs=1", "trainer.verbose=0", "callbacks=none", "logger.log_model=false",
            "model.hidden_units=[16]", f"paths.log_dir={tmp_path}"]
    with initialize_config_module("kexp.conf", version_base="1.3"):
        cfg = compose("tune", overrides=[*base, "search=optimizer", "tuner=grid"])
    tune(cfg, base)
    frame = runs.load_runs(store_uri(tmp_path), "kexp")
    (parent,) = runs.searches(frame)["run_id"]
    assert sorted(runs.trials(frame, parent)["optimizer"]) == ["adam", "rmsprop", "sgd"]
    trials = frame[frame["kind"] == "trial"]
    assert (trials["params.optimizer"] == trials["params.optimizer.name"]).all()
