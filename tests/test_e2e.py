"""Real runs, as a user starts them: subprocesses of `python -m kexp`, checked through MLflow."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from omegaconf import OmegaConf

from tests.conftest import compose_train, run_kexp

pytestmark = pytest.mark.slow


def run_dirs(logs: Path) -> list[Path]:
    return sorted(p.parent for p in (logs / "runs").glob("*/config.yaml"))


def client(logs: Path) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(tracking_uri=f"sqlite:///{logs.resolve()}/mlflow.db")


@pytest.fixture(scope="module")
def default_run(tmp_path_factory) -> Path:
    """`python -m kexp` with no arguments: what `make run` does."""
    cwd = tmp_path_factory.mktemp("default")
    done = run_kexp([], cwd)
    assert done.returncode == 0, done.stderr[-3000:]
    (folder,) = run_dirs(cwd / "logs")
    return folder


def test_default_run_reaches_090_and_writes_its_outputs(default_run):
    for name in ("config.yaml", "model.keras", "history.csv", "metrics.json",
                 "learning_curves.png", "model_summary.txt", "confusion_matrix.png",
                 "per_class.csv"):
        assert (default_run / name).is_file(), name
    metrics = json.loads((default_run / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.90
    assert metrics["epochs"] == 20 and 1 <= metrics["best_epoch"] <= 20
    assert metrics["params"] == 50826  # 64-256-128-10 MLP
    assert metrics["flops"] == 2 * (64 * 256 + 256 * 128 + 128 * 10)  # the run card
    assert metrics["trainable_params"] == 50826  # no batch norm: every weight trains
    history = (default_run / "history.csv").read_text().splitlines()
    assert history[0].split(",")[:2] == ["epoch", "accuracy"] and len(history) == 21
    saved = OmegaConf.load(default_run / "config.yaml")
    assert saved.paths.output_dir == str(default_run.resolve())  # resolved, not ${hydra:...}


def test_default_run_is_one_finished_mlflow_run(default_run):
    logs = default_run.parents[1]
    c = client(logs)
    exp = c.get_experiment_by_name("kexp")
    (run,) = c.search_runs([exp.experiment_id])
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params["optimizer.lr"] == "0.001" and params["model.name"] == "mlp"
    assert params["trainer.epochs"] == "20" and params["data.name"] == "digits"
    assert params["model.hidden_units"] == "[256, 128]"
    metrics = json.loads((default_run / "metrics.json").read_text())
    assert run.data.metrics["test_accuracy"] == pytest.approx(metrics["test_accuracy"])
    assert run.data.metrics["params"] == metrics["params"]
    assert run.data.metrics["flops"] == metrics["flops"]
    val_acc = c.get_metric_history(run.info.run_id, "val_accuracy")
    assert sorted(m.step for m in val_acc) == list(range(20))
    assert len(c.get_metric_history(run.info.run_id, "learning_rate")) == 20
    assert run.data.tags["model"] == "mlp" and run.data.tags["dataset"] == "digits"
    assert "kexp_version" in run.data.tags
    artifacts = {a.path for a in c.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "metrics.json", "learning_curves.png", "model_summary.txt",
            "history.csv", "provenance.json"} <= artifacts
    # the default store keeps artifacts beside mlflow.db, not in ./mlruns of the cwd
    assert exp.artifact_location == (logs / "mlartifacts").resolve().as_uri()
    assert not (logs.parent / "mlruns").exists()
    logged = c.search_logged_models([exp.experiment_id])
    assert logged and logged[0].source_run_id == run.info.run_id


def test_default_run_records_what_it_takes_to_rerun_it(default_run):
    import keras
    import tensorflow as tf

    from kexp.data import load
    from tests.conftest import compose_train

    facts = json.loads((default_run / "provenance.json").read_text())
    assert facts["versions"]["tensorflow"] == tf.__version__
    assert facts["versions"]["keras"] == keras.__version__
    assert {"keras-tuner", "mlflow", "tensorflow-datasets", "python", "kexp"} <= set(
        facts["versions"])
    assert facts["data"]["examples"] == {"train": 1293, "val": 144, "test": 360}
    # the fingerprint is of the numbers read: the same config reads the same, a subset does not
    data_cfg = compose_train().data
    assert facts["data"]["fingerprint"] == load(data_cfg, 64, 42).spec.fingerprint
    data_cfg.subset = 500
    assert load(data_cfg, 64, 42).spec.fingerprint != facts["data"]["fingerprint"]
    (run,) = client(default_run.parents[1]).search_runs(
        [client(default_run.parents[1]).get_experiment_by_name("kexp").experiment_id])
    assert run.data.tags["versions.tensorflow"] == tf.__version__
    assert run.data.tags["data.fingerprint"] == facts["data"]["fingerprint"]


def test_from_run_repeats_a_logged_run_as_a_new_linked_run(default_run):
    cwd = default_run.parents[2]
    c = client(default_run.parents[1])
    experiment = c.get_experiment_by_name("kexp").experiment_id
    (old,) = c.search_runs([experiment])
    done = run_kexp([f"from_run={old.info.run_id}", "trainer.epochs=2"], cwd)
    assert done.returncode == 0, done.stderr[-3000:]
    (new,) = c.search_runs([experiment], filter_string=f"tags.from_run = '{old.info.run_id}'")
    assert new.info.status == "FINISHED" and new.info.run_id != old.info.run_id
    assert new.data.params["trainer.epochs"] == "2"  # the override, on top of the old config
    # config.yaml names the store the run used (MLflow exports its URI to the environment)
    same = {k: v for k, v in old.data.params.items() if not k.startswith(
        ("trainer.epochs", "paths.output_dir", "tags", "logger.tracking_uri"))}
    assert {k: new.data.params[k] for k in same} == same
    done = run_kexp(["from_run=0123456789abcdef"], cwd, timeout=60)
    assert done.returncode == 2 and "no run '0123456789abcdef'" in done.stderr, done.stderr


def test_eval_reproduces_the_test_metrics(default_run, tmp_path):
    done = run_kexp([f"run_dir={default_run}"], tmp_path, module="kexp.eval")
    assert done.returncode == 0, done.stderr[-3000:]
    again = json.loads((default_run / "eval_metrics.json").read_text())
    first = json.loads((default_run / "metrics.json").read_text())
    assert again["test_accuracy"] == pytest.approx(first["test_accuracy"], abs=1e-6)
    assert f"test_accuracy={first['test_accuracy']:.4f}" in done.stdout


def test_eval_of_a_directory_that_is_not_a_run(tmp_path):
    done = run_kexp([f"run_dir={tmp_path}"], tmp_path, module="kexp.eval")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"kexp: error: run_dir: '{tmp_path}' has no config.yaml; pass the directory of a "
        "finished kexp run (it holds config.yaml and model.keras)"]


def test_console_script_is_installed(tmp_path):
    exe = shutil.which("kexp", path=str(Path(sys.executable).parent))
    assert exe, "the kexp console script is not installed next to this Python"
    done = subprocess.run([exe, "--cfg", "job", "model=mlp", "data=digits"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "hidden_units" in done.stdout


def test_non_finite_loss_fails_the_run_and_says_when(tmp_path):
    done = run_kexp(["optimizer=sgd", "optimizer.lr=1e6", "optimizer.momentum=0.0",
                     "logger.log_model=false"], tmp_path)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("kexp: error: non-finite loss") and "at epoch 1" in last
    assert "Traceback" not in done.stderr
    (run,) = client(tmp_path / "logs").search_runs(
        [client(tmp_path / "logs").get_experiment_by_name("kexp").experiment_id])
    assert run.info.status == "FAILED"


def test_image_model_too_deep_for_the_data_is_one_line(tmp_path):
    done = run_kexp(["model=cnn", "model.filters=[8,8,8,8]", "logger=none"], tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "kexp: error: model=cnn with 4 stages of same 3x3 convs needs images of at least 16x16, "
        "got (8, 8, 1); use fewer model.filters"]


def test_multirun_sweeps_and_concurrent_runs_get_their_own_dirs(tmp_path):
    sweep = run_kexp(["-m", "model=mlp,cnn", "debug=fast", "logger.log_model=false"], tmp_path)
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    jobs = sorted((tmp_path / "logs" / "multiruns").glob("*/*/metrics.json"))
    assert [OmegaConf.load(p.parent / "config.yaml").model.name for p in jobs] == ["mlp", "cnn"]
    c = client(tmp_path / "logs")  # one MLflow run per job
    runs = c.search_runs([c.get_experiment_by_name("kexp-debug").experiment_id])
    assert sorted((r.data.tags["model"], r.info.status) for r in runs) == [
        ("cnn", "FINISHED"), ("mlp", "FINISHED")]

    args = [sys.executable, "-m", "kexp", "debug=fast", "logger=none", "trainer.epochs=1"]
    env = {"KEXP_LOG_DIR": str(tmp_path / "logs"), "PATH": str(Path(sys.executable).parent)}
    procs = [subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) for _ in range(2)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    assert len(run_dirs(tmp_path / "logs")) == 2


def test_vgg_on_cifar10_through_tfds_mock(tmp_path):
    import tensorflow_datasets as tfds

    from kexp.recipe import train

    # from Python, with no Hydra app around it, the run makes its own dir under log_dir
    cfg = compose_train(["model=vgg", "data=cifar10", "debug=fast", "logger=none",
                         "trainer.batch_size=16", f"paths.log_dir={tmp_path}"])
    with tfds.testing.mock_data(num_examples=32):
        metrics = train(cfg)
    assert metrics["epochs"] == 1 and 0.0 <= metrics["test_accuracy"] <= 1.0
    assert metrics["params"] > 9_000_000  # full-width VGG-11 with batch norm
    (saved,) = (tmp_path / "runs").glob("*/model.keras")
    assert OmegaConf.load(saved.parent / "config.yaml").data.augment.crop_padding == 4


def test_tfds_dataset_not_on_disk_fails_fast_offline(tmp_path):
    from kexp.data.sources.tfds import online

    if online():
        pytest.skip("this machine can download MNIST; the offline path cannot be shown here")
    # a plain tfds.load would hang for minutes here before failing
    done = run_kexp(["data=mnist"], tmp_path, timeout=60,
                    env={"TFDS_DATA_DIR": str(tmp_path / "tfds")})
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("kexp: error: data.name: 'mnist' is not in")
    assert "data.data_dir" in line and "data=image_folder" in line
    assert not (tmp_path / "logs" / "mlflow.db").exists()  # no run was started


def test_ctrl_c_ends_the_mlflow_run_killed(tmp_path):
    import os
    import signal

    env = {**os.environ, "KEXP_LOG_DIR": str(tmp_path / "logs"), "PYTHONUNBUFFERED": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "kexp", "trainer.epochs=1000", "logger.log_model=false",
         "callbacks.early_stopping.enabled=false"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if line.startswith("Epoch 3/"):
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        "kexp: error: interrupted; the run directory keeps what was written so far")
    c = client(tmp_path / "logs")
    (run,) = c.search_runs([c.get_experiment_by_name("kexp").experiment_id])
    assert run.info.status == "KILLED"
    steps = [m.step for m in c.get_metric_history(run.info.run_id, "loss")]
    assert len(steps) >= 2 and sorted(steps) == list(range(len(steps)))
    # the epoch cut short is neither logged nor in history.csv; the backup holds the last whole
    # epoch, and the log says how to go on
    (folder,) = run_dirs(tmp_path / "logs")
    assert len((folder / "history.csv").read_text().splitlines()) == len(steps) + 1
    assert (folder / "backup" / "state.npz").is_file()
    assert f"python -m kexp resume={folder}" in (folder / "train.log").read_text()
