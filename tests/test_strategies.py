"""Strategies and what a run resolves under them: batch sizes, learning rate, XLA, replicas."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import tensorflow as tf
from omegaconf import OmegaConf

from kexp.errors import KexpError
from kexp.training.multi_worker import cluster_resolver
from kexp.training.settings import jit_compile, resolve
from kexp.training.strategy import auto_choice, make_strategy
from tests.conftest import compose_train, run_kexp
from tests.test_e2e import run_dirs
from tests.test_multi_worker import SAME, losses


def fake_strategy(replicas: int) -> SimpleNamespace:
    return SimpleNamespace(num_replicas_in_sync=replicas)


def settings(overrides: list[str], replicas: int):
    return resolve(compose_train(["trainer.jit_compile=false", *overrides]),
                   fake_strategy(replicas))


def test_batch_size_is_per_replica_and_the_global_batch_grows_with_replicas():
    s = settings(["trainer.batch_size=32"], replicas=4)
    assert (s.batch_size_per_replica, s.global_batch_size, s.replicas) == (32, 128, 4)
    s = settings(["trainer.batch_size=128", "trainer.batch_per_replica=false"], replicas=4)
    assert (s.batch_size_per_replica, s.global_batch_size) == (32, 128)
    with pytest.raises(KexpError, match="trainer.batch_size: 100 is the global batch"):
        settings(["trainer.batch_size=100", "trainer.batch_per_replica=false"], replicas=8)


def test_scale_lr_multiplies_the_learning_rate_by_the_replicas():
    assert settings(["optimizer.lr=0.01"], replicas=4).learning_rate == 0.01
    scaled = settings(["optimizer.lr=0.01", "schedule.scale_lr=true"], replicas=4)
    assert scaled.learning_rate == pytest.approx(0.04)


def test_steps_per_execution_is_forced_to_one_under_several_replicas():
    assert settings(["trainer.steps_per_execution=8"], replicas=1).steps_per_execution == 8
    assert settings(["trainer.steps_per_execution=8"], replicas=2).steps_per_execution == 1


def test_auto_strategy_choice_for_zero_one_and_two_gpus():
    assert auto_choice([]) == "default"
    assert auto_choice(["/device:GPU:0"]) == "one_device"
    assert auto_choice(["/device:GPU:0", "/device:GPU:1"]) == "mirrored"
    # this machine has no GPU: TensorFlow's default strategy, one replica
    strategy = make_strategy(OmegaConf.create({"name": "auto"}))
    assert strategy is tf.distribute.get_strategy() and strategy.num_replicas_in_sync == 1


def test_jit_compile_auto_is_explicit_and_off_on_a_cpu():
    cpu = tf.distribute.OneDeviceStrategy("/cpu:0")
    assert jit_compile("auto", cpu) is False
    assert jit_compile("auto", tf.distribute.get_strategy()) is False  # no GPU here
    assert jit_compile(True, cpu) is True and jit_compile(False, cpu) is False
    assert jit_compile("auto", fake_strategy(2)) is False  # 2+ replicas: only when forced


def test_multi_worker_cluster_comes_from_config_or_tf_config(monkeypatch):
    cfg = OmegaConf.create({"cluster": ["10.0.0.1:2222", "10.0.0.2:2222"], "task_index": 1})
    resolver = cluster_resolver(cfg)
    assert (resolver.task_type, resolver.task_id) == ("worker", 1)
    assert resolver.cluster_spec().as_dict() == {"worker": ["10.0.0.1:2222", "10.0.0.2:2222"]}
    with pytest.raises(KexpError, match="strategy.task_index: 2 is not valid; expected .* 0 to 1"):
        cluster_resolver(OmegaConf.merge(cfg, {"task_index": 2}))

    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(KexpError, match="set strategy.cluster=.* or the TF_CONFIG"):
        cluster_resolver(OmegaConf.create({"cluster": None, "task_index": None}))
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(KexpError, match="TF_CONFIG: expected JSON like"):
        cluster_resolver(OmegaConf.create({"cluster": None}))
    monkeypatch.setenv("TF_CONFIG", json.dumps(
        {"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 0}}))
    assert cluster_resolver(OmegaConf.create({"cluster": None})).task_id == 0


def test_tpu_strategy_without_a_tpu_is_one_line(tmp_path):
    done = run_kexp(["strategy=tpu", "logger=none"], tmp_path, timeout=120)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("kexp: error: strategy=tpu: no TPU reachable")


@pytest.mark.slow
def test_mirrored_on_two_logical_cpus_follows_one_device_with_the_same_global_batch(tmp_path):
    for name in ("mirrored", "single"):
        (tmp_path / name).mkdir()
    mirrored = run_kexp(["strategy=mirrored", "strategy.virtual_cpus=2", "logger=none",
                         "trainer.batch_size=32", "trainer.steps_per_execution=4", *SAME],
                        tmp_path / "mirrored")
    assert mirrored.returncode == 0, mirrored.stderr[-3000:]
    said = mirrored.stdout + mirrored.stderr  # Hydra's logging writes to stdout
    assert "MirroredStrategy with 2 replica(s), global batch 64 (32 per replica)" in said
    assert "trainer.steps_per_execution=4 forced to 1 under 2 replicas" in said
    single = run_kexp(["logger=none", "trainer.batch_size=64", *SAME], tmp_path / "single")
    assert single.returncode == 0, single.stderr[-3000:]
    (two,), (one,) = (run_dirs(tmp_path / name / "logs") for name in ("mirrored", "single"))
    assert losses(two / "history.csv") == pytest.approx(losses(one / "history.csv"), rel=1e-4)
    assert (two / "model.keras").exists()
