"""Bad input gets one line naming the problem and a non-zero exit, before any training."""

from __future__ import annotations

import pytest

from tests.conftest import run_kexp

# (arguments, words the one-line message must contain)
CONFIG_MISTAKES = [
    (["model=vgx"], ["model", "vgx", "vgg, vgg11"]),
    (["data=cifar11"], ["data", "cifar11", "cifar10"]),
    (["optimizer=adamm"], ["optimizer", "adamm", "adam"]),
    (["trainer.epoch=3"], ["trainer.epoch"]),
    (["trainer.epochs=abc"], ["trainer.epochs", "integer", "abc"]),
    (["trainer.epochs=0"], ["trainer.epochs", "positive"]),
    (["trainer.batch_size=-8"], ["trainer.batch_size", "-8"]),
    (["optimizer.lr=-0.1"], ["optimizer.lr"]),
    (["model.dropout=1.5"], ["model.dropout"]),
    (["model.hidden_units=64"], ["model.hidden_units", "list"]),
    (["trainer.precision=fp16"], ["trainer.precision", "mixed_float16"]),
    (["data.val_fraction=abc"], ["data.val_fraction"]),
    (["data=npz"], ["data.path"]),
    (["model=vgg", "model.dept=16"], ["model.dept"]),
]


@pytest.mark.parametrize(("args", "words"), CONFIG_MISTAKES,
                         ids=[" ".join(a) for a, _ in CONFIG_MISTAKES])
def test_config_mistake_is_one_line_before_tensorflow(workdir, args, words):
    done = run_kexp([*args, "logger=none"], workdir, timeout=60)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kexp: error:"), done.stderr
    for word in words:
        assert word in lines[0]
    assert not (workdir / "logs").exists(), "a bad config must not start a run"
