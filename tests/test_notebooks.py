"""notebooks/*.ipynb run top to bottom in a kernel of this interpreter, as a reader would run
them: quickstart.ipynb trains and evaluates a model; compare_runs.ipynb tables and plots the
runs of an experiment (tests/experiment_runs.py)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import nbformat
import pytest
from ipykernel.kernelspec import write_kernel_spec
from nbclient import NotebookClient

from tests.conftest import ROOT
from tests.experiment_runs import RUNS, SEARCH, TRIALS, experiment_logs  # noqa: F401

NOTEBOOKS = ROOT / "notebooks"


@pytest.fixture
def kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Jupyter's `python3` kernel pointed at this interpreter (the venv's), whatever kernels
    the machine has installed: $JUPYTER_PATH is searched first. Jupyter's and IPython's files
    go under tmp_path, not $HOME."""
    jupyter = tmp_path / "jupyter"
    write_kernel_spec(jupyter / "kernels" / "python3")
    monkeypatch.setenv("JUPYTER_PATH", str(jupyter))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(jupyter / "runtime"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


def execute(name: str, cwd: Path) -> dict[str, list[dict]]:
    """Run notebooks/<name>.ipynb in `cwd` (a failing cell fails the test with its traceback);
    the outputs of each tagged cell, by tag."""
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    NotebookClient(notebook, timeout=240, kernel_name="python3",
                   resources={"metadata": {"path": str(cwd)}}).execute()
    return {tag: cell.outputs for cell in notebook.cells if cell.cell_type == "code"
            for tag in cell.metadata.get("tags", [])}


def data(outputs: list[dict], kind: str) -> list[str]:
    return [o["data"][kind] for o in outputs if kind in o.get("data", {})]


def test_quickstart_trains_evaluates_and_shows_predictions_and_curves(kernel, monkeypatch):
    monkeypatch.setenv("KEXP_LOG_DIR", str(kernel / "logs"))
    cells = execute("quickstart", kernel)

    trained = ast.literal_eval(data(cells["train"], "text/plain")[-1])
    assert trained["epochs"] == 3 and trained["test_accuracy"] > 0.5  # chance is 0.1
    (run_dir,) = (kernel / "logs" / "runs").iterdir()
    assert json.loads((run_dir / "metrics.json").read_text())["epochs"] == 3
    # kexp.eval reloads model.keras and rebuilds the test split: the same numbers
    evaluated = ast.literal_eval(data(cells["evaluate"], "text/plain")[-1])
    assert evaluated["test_accuracy"] == pytest.approx(trained["test_accuracy"], abs=1e-6)
    assert (run_dir / "eval_metrics.json").is_file()
    assert data(cells["predictions"], "image/png") and data(cells["curves"], "image/png")


def test_compare_runs_tables_and_plots_the_runs_of_the_default_store(
        kernel, monkeypatch, experiment_logs):  # noqa: F811
    # TRACKING_URI = None: the store `python -m kexp` would log to, here via $KEXP_LOG_DIR
    monkeypatch.setenv("KEXP_LOG_DIR", str(experiment_logs))
    cells = execute("compare_runs", kernel)

    (table,) = data(cells["runs-table"], "text/html")
    assert all(name in table for name in [*RUNS, SEARCH])
    assert "test_accuracy" in table and "flops" in table
    for tag in ("curves", "size-and-cost", "hyperparameter"):
        assert len(data(cells[tag], "image/png")) == 1, tag
    search = cells["search"]
    (trials,) = data(search, "text/html")
    assert all(name in trials for name in TRIALS) and "optimizer.lr" in trials
    assert data(search, "image/png")  # val_accuracy against the searched key
