"""logger=tensorboard, logger=[mlflow,tensorboard] and logger.register_model: what each writes,
read back with TensorBoard's own event reader and MLflow's client.

Five tiny in-process runs: TensorBoard alone (histograms on), both loggers registering the
model (version 1), MLflow alone registering it again (version 2), a language model whose
samples become text summaries and a GAN whose grids become an image series."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from omegaconf import OmegaConf

from tests.conftest import ROOT, cfg_job_without_tensorflow, compose_train
from tests.test_e2e import client, run_dirs
from tests.test_language_model import TINY as LM_TINY
from tests.test_language_model import corpus

FAST = ["data=digits", "model=mlp", "trainer.epochs=2", "trainer.verbose=0", "callbacks=none",
        "data.subset=256"]
MODEL_NAME = "digits-mlp"


def events(run: Path):
    """The run's TensorBoard events, every value loaded (0: no sampling)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    found = EventAccumulator(str(run / "tensorboard"), size_guidance={"tensors": 0})
    found.Reload()
    return found


def plugin_tags(found) -> dict[str, set[str]]:
    """{plugin name: its tags}: TF2 summaries are all tensors, told apart by their plugin."""
    tags: dict[str, set[str]] = {}
    for tag in found.Tags()["tensors"]:
        tags.setdefault(found.SummaryMetadata(tag).plugin_data.plugin_name, set()).add(tag)
    return tags


def values(found, tag: str) -> list[tuple[int, float]]:
    from tensorboard.util import tensor_util

    return [(e.step, float(tensor_util.make_ndarray(e.tensor_proto)))
            for e in found.Tensors(tag)]


def train_in(logs: Path, overrides: list[str]) -> tuple[dict, Path]:
    from kexp.recipe import train

    metrics = train(compose_train([*overrides, f"paths.log_dir={logs}"]))
    return metrics, run_dirs(logs)[-1]


@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tensorboard") / "logs"


@pytest.fixture(scope="module")
def tensorboard_run(logs) -> tuple[dict, Path]:
    return train_in(logs / "alone", [*FAST, "logger=tensorboard",
                                     "logger.tensorboard.histograms=true"])


@pytest.fixture(scope="module")
def both_run(logs) -> tuple[dict, Path]:
    return train_in(logs / "both", [*FAST, "logger=[mlflow,tensorboard]",
                                    "logger.tracking_uri=null",
                                    f"logger.register_model={MODEL_NAME}"])


def test_the_logger_options_compose_into_one_logger_node():
    both = compose_train(["logger=[mlflow,tensorboard]"]).logger
    assert OmegaConf.to_container(both, resolve=False) == {
        **OmegaConf.to_container(compose_train().logger, resolve=False),
        "tensorboard": {"histograms": False}}
    assert set(compose_train(["logger=tensorboard"]).logger) == {"tensorboard"}
    assert OmegaConf.to_container(compose_train(["logger=none"]).logger) == {"backend": "none"}
    printed = cfg_job_without_tensorflow("kexp", ["logger=[mlflow,tensorboard]"])
    assert printed.logger.backend == "mlflow" and printed.logger.tensorboard.histograms is False


def test_make_tensorboard_serves_the_logs_on_loopback():
    recipe = re.search(r"^tensorboard:.*\n((?:\t.*\n?)+)", (ROOT / "Makefile").read_text(),
                       re.M)
    assert recipe is not None
    assert re.search(r"tensorboard --logdir logs --host 127\.0\.0\.1\b", recipe.group(1))


@pytest.mark.parametrize(("args", "message"), [
    (["logger=[mlflow,tensorbord]"], "unknown logger 'tensorbord'"),
    (["logger.register_model=x", "logger.log_model=false"],
     "logger.register_model=x registers the logged model; it needs logger.log_model=true"),
    (["logger=tensorboard", "logger.tensorboard.histograms=nope"],
     "logger.tensorboard.histograms: "),
])
def test_bad_logger_settings_fail_in_one_line(args, message):
    done = subprocess.run([sys.executable, "-m", "kexp", *args, "--cfg", "job"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_tensorboard_alone_writes_every_summary_and_no_mlflow_store(tensorboard_run, logs):
    metrics, run = tensorboard_run
    found = events(run)
    tags = plugin_tags(found)
    for metric in ("loss", "val_loss", "accuracy", "val_accuracy", "learning_rate"):
        assert [step for step, _ in values(found, metric)] == [0, 1], metric
    assert values(found, "test_accuracy") == [(0, pytest.approx(metrics["test_accuracy"]))]
    assert {"_hparams_/session_start_info", "_hparams_/session_end_info"} <= tags["hparams"]
    assert {"confusion_matrix", "learning_curves"} <= tags["images"]
    assert "keras" in tags["graph_keras_model"] and found.Tags()["graph"]
    assert "dense_0/kernel" in tags["histograms"]
    assert not (logs / "alone" / "mlflow.db").exists()
    assert not (run / "mlflow_run_id").exists()


def test_the_hparams_are_the_resolved_config_with_numbers_kept(tensorboard_run):
    from tensorboard.plugins.hparams import plugin_data_pb2

    _, run = tensorboard_run
    found = events(run)
    content = found.SummaryMetadata("_hparams_/session_start_info").plugin_data.content
    start = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    assert start.hparams["trainer.epochs"].number_value == 2
    assert start.hparams["model.name"].string_value == "mlp"
    assert start.hparams["data.name"].string_value == "digits"


def test_both_loggers_one_run_two_viewers_and_the_model_registered(both_run, logs):
    metrics, run = both_run
    found = events(run)
    assert [step for step, _ in values(found, "val_loss")] == [0, 1]
    assert "confusion_matrix" in plugin_tags(found)["images"]
    runs = client(logs / "both").search_runs(
        [client(logs / "both").get_experiment_by_name("kexp").experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert (run / "mlflow_run_id").read_text().strip() == runs[0].info.run_id
    history = client(logs / "both").get_metric_history(runs[0].info.run_id, "val_loss")
    assert [m.step for m in history] == [0, 1]
    assert runs[0].data.metrics["test_accuracy"] == pytest.approx(metrics["test_accuracy"])
    versions = client(logs / "both").search_model_versions(f"name='{MODEL_NAME}'")
    assert [(int(v.version), v.run_id) for v in versions] == [(1, runs[0].info.run_id)]


def test_a_second_registered_run_is_version_2(both_run, logs):
    train_in(logs / "both", [*FAST, "trainer.epochs=1", "logger.tracking_uri=null",
                             f"logger.register_model={MODEL_NAME}"])
    versions = client(logs / "both").search_model_versions(f"name='{MODEL_NAME}'")
    assert sorted(int(v.version) for v in versions) == [1, 2]
    loaded = mlflow.MlflowClient(f"sqlite:///{(logs / 'both').resolve()}/mlflow.db") \
        .get_model_version(MODEL_NAME, "2")
    assert loaded.status == "READY"


def test_a_language_model_writes_its_samples_as_text(tmp_path):
    from tensorboard.util import tensor_util

    text = corpus(tmp_path / "book.txt", sentences=400)
    _, run = train_in(tmp_path / "logs", [*LM_TINY, f"data.path={text}", "model=gru",
                                          "model.units=16", "model.embedding_dim=8",
                                          "trainer.epochs=1", "logger=tensorboard"])
    found = events(run)
    samples = found.Tensors("samples")
    assert [e.step for e in samples] == [1]  # samples/epoch_001.txt
    written = tensor_util.make_ndarray(samples[0].tensor_proto).item().decode()
    assert written == (run / "samples" / "epoch_001.txt").read_text(encoding="utf-8")


def test_a_gan_writes_its_grids_as_an_image_series(tmp_path):
    from tests.test_gan import train_gan

    _, run = train_gan(tmp_path / "logs", "trainer.epochs=2", "logger=tensorboard")
    found = events(run)
    assert [e.step for e in found.Tensors("samples")] == [1, 2]  # grids/epoch_00N.png
    assert [step for step, _ in values(found, "g_loss")] == [0, 1]
    assert "graph_keras_model" not in plugin_tags(found)  # a GAN's pair: no one graph
