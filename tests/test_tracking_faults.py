"""The tracking store failing: unreachable at the start, lost in the middle of a run (then
`kexp.sync` uploads the run directory), and four runs creating one SQLite store at once.

Faults are real and on loopback only: a port that was bound and closed again, and MLflow's own
tracking server (its Flask app, served by werkzeug in a subprocess of the test) that exits
for good right after it stored the first epoch's metrics, as a killed server would.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import mlflow
import pytest
from omegaconf import OmegaConf

from kexp.tracking.params import flatten
from tests.conftest import run_kexp

pytestmark = pytest.mark.slow

TINY = ["trainer.epochs=2", "logger.log_model=false"]
EPOCH_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate")
RUN_FILES = ("config.yaml", "metrics.json", "history.csv", "model.keras", "learning_curves.png",
             "model_summary.txt", "mlflow_run_id")

# MLflow's tracking server app with a SQLite backend and proxied artifacts. With a step >= 0
# it exits (os._exit, like a kill: no shutdown) as soon as it has answered the request that
# logged `loss` at that step, so the run loses its store between two epochs, every time.
SERVER = textwrap.dedent("""
    import json, os, sys
    db, artifacts, die_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
    os.environ.update({"_MLFLOW_SERVER_FILE_STORE": f"sqlite:///{db}",
                       "_MLFLOW_SERVER_SERVE_ARTIFACTS": "true",
                       "_MLFLOW_SERVER_ARTIFACT_DESTINATION": artifacts,
                       "_MLFLOW_SERVER_ARTIFACT_ROOT": "mlflow-artifacts:/"})
    from io import BytesIO
    from mlflow.server import app
    from werkzeug.serving import make_server

    class ExitAfter:
        def __init__(self, answer): self.answer = answer
        def __iter__(self): return iter(self.answer)
        def close(self): os._exit(0)  # werkzeug calls this once the answer is sent

    def dying(environ, start_response):
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = BytesIO(body)
        answer = app(environ, start_response)
        if environ["PATH_INFO"].endswith("/runs/log-batch") and any(
                m["key"] == "loss" and int(m.get("step", 0)) == die_at
                for m in json.loads(body or b"{}").get("metrics", [])):
            return ExitAfter(answer)
        return answer

    server = make_server("127.0.0.1", 0, dying if die_at >= 0 else app, threaded=True)
    print(server.port, flush=True)
    server.serve_forever()
""")


def closed_port() -> int:
    """A loopback port nothing listens on: bound by this process, then released."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(where: Path, die_at_step: int = -1) -> tuple[subprocess.Popen, str]:
    """MLflow's tracking server on a free loopback port, its store and artifacts in `where`."""
    where.mkdir(exist_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(where / "server.db"), str(where / "artifacts"),
         str(die_at_step)],
        stdout=subprocess.PIPE, stderr=(where / "server.log").open("a"), text=True)
    port = proc.stdout.readline().strip()  # printed once the port listens
    assert port.isdigit(), (where / "server.log").read_text()[-3000:]
    return proc, f"http://127.0.0.1:{port}"


def finished_runs(logs: Path) -> list[Path]:
    return sorted(p.parent for p in (logs / "runs").glob("*/metrics.json"))


def test_unreachable_store_fails_in_seconds_before_training(tmp_path):
    uri = f"http://127.0.0.1:{closed_port()}"
    started = time.monotonic()
    done = run_kexp([f"logger.tracking_uri={uri}", *TINY], tmp_path, timeout=120)
    took = time.monotonic() - started
    assert done.returncode == 2, done.stderr[-3000:]
    assert done.stderr.strip().splitlines() == [
        f"kexp: error: logger.tracking_uri: cannot reach {uri} (connection refused); start the "
        "server, or use logger=none / unset it for the local SQLite store"]
    assert took < 10, f"{took:.1f} s"  # MLflow's own retries would take minutes
    assert "Epoch 1/" not in done.stdout
    written = {p.name for p in (tmp_path / "logs").glob("runs/*/*")}  # not Hydra's .hydra/
    assert not written & {"config.yaml", "history.csv", "model.keras", "metrics.json"}


def test_store_lost_mid_run_then_synced_once(tmp_path):
    server, uri = start_server(tmp_path / "store", die_at_step=0)
    try:
        done = run_kexp([f"logger.tracking_uri={uri}", *TINY], tmp_path, timeout=300)
        assert server.wait(timeout=30) == 0  # it did go away after epoch 1
    finally:
        server.kill()
    assert done.returncode == 0, done.stderr[-3000:]
    (folder,) = finished_runs(tmp_path / "logs")
    for name in RUN_FILES:
        assert (folder / name).is_file(), name
    output = done.stdout + done.stderr
    warning = (f"MLflow store {uri} unreachable since epoch 2 (")
    assert output.count(warning) == 1, output[-3000:]
    line = next(x for x in output.splitlines() if warning in x)
    assert line.endswith(f"training goes on; the run directory keeps everything; upload it "
                         f"later with: python -m kexp.sync run_dir={folder.resolve()}")
    assert "Traceback" not in output
    run_id = (folder / "mlflow_run_id").read_text().strip()

    # the server comes back on another port, same store: the run stopped at epoch 1
    server, uri = start_server(tmp_path / "store")
    try:
        client = mlflow.MlflowClient(uri)
        assert client.get_run(run_id).info.status == "RUNNING"
        assert [m.step for m in client.get_metric_history(run_id, "loss")] == [0]

        synced = run_kexp([f"run_dir={folder}", f"logger.tracking_uri={uri}"], tmp_path,
                          module="kexp.sync", timeout=120)
        assert synced.returncode == 0, synced.stderr[-3000:]
        assert f"into its MLflow run {run_id} " in synced.stdout
        check_synced(client, run_id, folder)

        again = run_kexp([f"run_dir={folder}", f"logger.tracking_uri={uri}"], tmp_path,
                         module="kexp.sync", timeout=120)
        assert again.returncode == 0, again.stderr[-3000:]
        assert "0 new params, 0 new metric values" in again.stdout
        check_synced(client, run_id, folder)  # nothing doubled
        experiment = client.get_run(run_id).info.experiment_id
        assert len(client.search_runs([experiment])) == 1
    finally:
        server.kill()


def check_synced(client: mlflow.MlflowClient, run_id: str, folder: Path) -> None:
    """The MLflow run holds what the run directory holds, each metric step once."""
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    config = flatten(OmegaConf.to_container(OmegaConf.load(folder / "config.yaml")))
    assert {k: run.data.params.get(k) for k in config} == config
    for key in EPOCH_METRICS:
        assert sorted(m.step for m in client.get_metric_history(run_id, key)) == [0, 1], key
    metrics = json.loads((folder / "metrics.json").read_text())
    for key in ("test_loss", "test_accuracy", "best_val_accuracy", "params", "flops"):
        assert len(client.get_metric_history(run_id, key)) == 1, key
        assert run.data.metrics[key] == pytest.approx(metrics[key]), key
    assert run.data.tags["kexp.synced"] == "true"
    assert (run.data.tags["model"], run.data.tags["dataset"]) == ("mlp", "digits")
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"config.yaml", "metrics.json", "history.csv", "learning_curves.png",
            "model_summary.txt"} <= artifacts


def test_sync_refuses_a_directory_that_is_not_a_finished_run(tmp_path):
    (tmp_path / "config.yaml").write_text("model: {name: mlp}\n")
    done = run_kexp([f"run_dir={tmp_path}"], tmp_path, module="kexp.sync", timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"kexp: error: run_dir: '{tmp_path}' has no metrics.json, so it is not a finished kexp "
        "run; pass the directory of a run that ended (it holds config.yaml and metrics.json)"]


def test_four_runs_at_once_on_a_new_sqlite_store(tmp_path):
    # the same KEXP_LOG_DIR: all four create logs/mlflow.db, which does not exist yet
    with ThreadPoolExecutor(4) as pool:
        done = list(pool.map(lambda _: run_kexp([*TINY, "callbacks=none"], tmp_path,
                                                timeout=300), range(4)))
    for proc in done:
        assert proc.returncode == 0, proc.stderr[-3000:]
    folders = finished_runs(tmp_path / "logs")
    assert len(folders) == 4
    client = mlflow.MlflowClient(f"sqlite:///{(tmp_path / 'logs' / 'mlflow.db').resolve()}")
    runs = client.search_runs([client.get_experiment_by_name("kexp").experiment_id])
    assert sorted(r.info.status for r in runs) == ["FINISHED"] * 4
    assert sorted(r.info.run_id for r in runs) == sorted(
        (f / "mlflow_run_id").read_text().strip() for f in folders)
    config = set(flatten(OmegaConf.to_container(OmegaConf.load(folders[0] / "config.yaml"))))
    keys = set(runs[0].data.params)
    assert config < keys and any(k.startswith("resolved.") for k in keys)
    for run in runs:
        assert set(run.data.params) == keys  # every run has all of a single run's params
        for key in EPOCH_METRICS:
            steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
            assert sorted(steps) == [0, 1], (run.info.run_id, key)
        assert "test_accuracy" in run.data.metrics
