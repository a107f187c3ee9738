"""trainer.deterministic: the same config twice gives the same metrics, bit for bit."""

from __future__ import annotations

from tensorflow.python.framework import config as tf_config

from kexp.recipe import train
from tests.conftest import compose_train

TIMING = {"wall_seconds", "examples_per_second", "seconds_to_first_step"}  # machine load


def test_deterministic_runs_repeat_bit_for_bit_and_the_setting_does_not_leak(tmp_path):
    args = ["model=cnn", "model.width=0.25", "debug=fast", "logger=none", "trainer.epochs=2",
            "trainer.deterministic=true", f"paths.log_dir={tmp_path}"]
    first, second = (train(compose_train(args)) for _ in range(2))
    outcome = {k: v for k, v in first.items() if k not in TIMING}
    assert outcome == {k: v for k, v in second.items() if k not in TIMING}
    assert outcome["epochs"] == 2 and tf_config.is_op_determinism_enabled()

    train(compose_train([*args[:-2], f"paths.log_dir={tmp_path}"]))  # deterministic: false
    assert not tf_config.is_op_determinism_enabled()
