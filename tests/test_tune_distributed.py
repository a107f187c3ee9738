"""Distributed search: a chief serving keras-tuner's oracle and workers running the trials."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from kexp.errors import KexpError
from kexp.tuning import distributed
from tests.conftest import run_kexp
from tests.test_e2e import client


def dist(**keys):
    return OmegaConf.create({"role": "worker", "address": "127.0.0.1:8000", "worker_id": None,
                             **keys})


@pytest.mark.parametrize(("keys", "message"), [
    ({"role": "master"}, "tuner.distributed.role: 'master' is not one of none, chief, worker"),
    ({"address": "127.0.0.1"}, "tuner.distributed.address: '127.0.0.1' is not host:port"),
    ({"address": "host:99999"}, "tuner.distributed.address: 'host:99999' is not host:port"),
    ({"worker_id": "chief-2"}, "tuner.distributed.worker_id: 'chief-2' must not contain 'chief'"),
])
def test_bad_distributed_settings_are_named(keys, message):
    with pytest.raises(KexpError, match="^" + message.replace("(", r"\(")):
        distributed.tuner_id(dist(**keys))


@pytest.mark.parametrize("arg", ["tuner.distributed.role=master",
                                 "tuner.distributed.address=10.0.0.1"])
def test_bad_distributed_setting_on_the_command_line_is_one_line(tmp_path, arg):
    done = run_kexp([arg], tmp_path, module="kexp.tune", timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"kexp: error: {arg.split('=')[0]}: '{arg.split('=')[1]}' is not valid; expected "
        + ("none, chief, worker" if "role" in arg else "host:port, e.g. 127.0.0.1:8000")]


def test_keras_tuner_environment_is_set_for_the_search_only(monkeypatch):
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "10.9.9.9")  # left over in the user's shell
    with distributed.environment(dist(role="none")):
        assert "KERASTUNER_ORACLE_IP" not in os.environ  # kexp's config alone decides
    with distributed.environment(dist(address="[::1]:9000", worker_id="w7")) as role:
        assert role == "worker"
        assert (os.environ["KERASTUNER_TUNER_ID"], os.environ["KERASTUNER_ORACLE_IP"],
                os.environ["KERASTUNER_ORACLE_PORT"]) == ("w7", "::1", "9000")
    assert os.environ["KERASTUNER_ORACLE_IP"] == "10.9.9.9"
    assert "KERASTUNER_TUNER_ID" not in os.environ


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_chief_and_two_workers_run_every_trial_exactly_once(tmp_path):
    args = [sys.executable, "-m", "kexp.tune", "tuner.max_trials=4", "trainer.epochs=2",
            "trainer.verbose=0", "model.hidden_units=[32]",
            f"tuner.distributed.address=127.0.0.1:{free_port()}"]
    env = {**os.environ, "KEXP_LOG_DIR": str(tmp_path / "logs")}
    env.pop("MLFLOW_TRACKING_URI", None)

    def start(role: str) -> subprocess.Popen:
        return subprocess.Popen([*args, f"tuner.distributed.role={role}"], cwd=tmp_path, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    chief, *workers = [start(role) for role in ("chief", "worker", "worker")]
    said = [p.communicate(timeout=300)[0] for p in (chief, *workers)]
    assert [p.returncode for p in (chief, *workers)] == [0, 0, 0], said[0][-3000:]
    assert "[kexp.tune] best val_accuracy" in said[0]  # the chief summarizes

    c = client(tmp_path / "logs")
    runs = c.search_runs([c.get_experiment_by_name("kexp").experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("kexp.search") == "parent"]
    trials = [r for r in runs if "kexp.trial_id" in r.data.tags]
    assert sorted(r.data.tags["kexp.trial_id"] for r in trials) == ["0", "1", "2", "3"]
    assert all(r.info.status == "FINISHED" for r in [parent, *trials])
    assert {r.data.tags["mlflow.parentRunId"] for r in trials} == {parent.info.run_id}
    assert parent.data.metrics["trials_completed"] == 4
    assert parent.data.metrics["epochs_trained"] == 8  # read from what the workers recorded
    # each worker says which trials it ran; MLflow has them under that worker's id
    ran = {}
    for out in said[1:]:
        (last,) = [line for line in out.splitlines() if "the chief ended the search" in line]
        worker, listed = last.split()[2].rstrip(":"), last.rsplit(": ", 1)[1]
        ran[worker] = set() if listed == "none" else set(listed.split(", "))
    logged = {w: {r.data.tags["kexp.trial_id"] for r in trials
                  if r.data.tags["kexp.tuner_id"] == w} for w in ran}
    assert logged == ran and sum(map(len, ran.values())) == 4
