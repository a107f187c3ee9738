"""strategy=multi_worker: two worker processes on 127.0.0.1 train one model together."""

from __future__ import annotations

import csv
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_kexp
from tests.test_e2e import client

pytestmark = pytest.mark.slow

# full global batches only (256 = 4 x 64): a partial last batch is split unevenly over workers
SAME = ["data.subset=256", "model.dropout=0.0", "trainer.epochs=3", "trainer.verbose=2"]


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def losses(history_csv: Path) -> list[float]:
    with history_csv.open() as f:
        return [float(row["loss"]) for row in csv.DictReader(f)]


def test_two_workers_train_in_step_like_one_process_with_the_same_global_batch(tmp_path):
    cluster = ",".join(f"127.0.0.1:{p}" for p in free_ports(2))
    env = {**os.environ, "KEXP_LOG_DIR": str(tmp_path / "logs")}
    env.pop("MLFLOW_TRACKING_URI", None)
    workers = [subprocess.Popen(
        [sys.executable, "-m", "kexp", "strategy=multi_worker", f"strategy.cluster=[{cluster}]",
         f"strategy.task_index={i}", "trainer.batch_size=32", *SAME],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for i in range(2)]
    try:
        said = [w.communicate(timeout=240)[0] for w in workers]
    finally:
        for w in workers:
            w.kill()
    assert [w.returncode for w in workers] == [0, 0], said[0][-3000:] + said[1][-3000:]
    assert "global batch 64 (32 per replica)" in said[0]

    # the same weights on both workers at the end
    prints = [re.findall(r"final weights fingerprint (\w+)", out) for out in said]
    assert len(prints[0]) == 1 and prints[0] == prints[1]

    # only the chief keeps files and logs to MLflow
    (model_file,) = (tmp_path / "logs" / "runs").glob("*/model.keras")
    c = client(tmp_path / "logs")
    (run,) = c.search_runs([c.get_experiment_by_name("kexp").experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["resolved.global_batch_size"] == "64"
    assert run.data.params["resolved.replicas"] == "2"

    # one process with the same global batch and seed follows the same loss curve
    (tmp_path / "single").mkdir()
    single = run_kexp(["trainer.batch_size=64", "logger=none", *SAME], tmp_path / "single")
    assert single.returncode == 0, single.stderr[-3000:]
    (alone,) = (tmp_path / "single" / "logs" / "runs").glob("*/history.csv")
    together = model_file.parent / "history.csv"
    assert losses(together) == pytest.approx(losses(alone), rel=1e-4)
