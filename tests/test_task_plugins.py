"""A user's own data source and task, from a package outside kexp, trusted through
kexp.allow_targets and refused without it (before anything of theirs is imported)."""

from __future__ import annotations

import textwrap

import pytest
from hydra import compose, initialize_config_dir

from kexp.cli import config_dir
from kexp.config import validate
from kexp.errors import KexpError

SOURCE = '''
import numpy as np

from kexp.data.raw import from_arrays


def sines(cfg, seed):
    """y = sin(x0) + x1 / 2 on random points: a real-valued source of the user's own."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, size=(int(cfg.examples), 2)).astype("float32")
    y = (np.sin(x[:, 0]) + x[:, 1] / 2).astype("float32")[:, None]
    cut = [int(len(x) * 0.7), int(len(x) * 0.85)]
    parts = [(x[a:b], y[a:b]) for a, b in zip([0, *cut], [*cut, len(x)])]
    return from_arrays(*parts, class_names=[], target_names=["y"], feature_names=["x0", "x1"])
'''
TASK = '''
from kexp.tasks.regression import Regression


class MedianRegression(Regression):
    """Regression whose default loss is the absolute error (the median's loss)."""

    def __init__(self, settings):
        super().__init__({**settings, "loss": settings.get("loss") or "mae"})
'''


@pytest.fixture
def user_package(tmp_path, monkeypatch):
    (tmp_path / "userpkg").mkdir()
    (tmp_path / "userpkg" / "__init__.py").write_text("")
    (tmp_path / "userpkg" / "data.py").write_text(SOURCE)
    (tmp_path / "userpkg" / "tasks.py").write_text(TASK)
    conf = tmp_path / "user_conf"
    (conf / "data").mkdir(parents=True)
    (conf / "task").mkdir()
    (conf / "data" / "sines.yaml").write_text(textwrap.dedent("""\
        _target_: userpkg.data.sines
        name: sines
        examples: 600
        """))
    (conf / "task" / "median.yaml").write_text(textwrap.dedent("""\
        _target_: userpkg.tasks.MedianRegression
        targets: real
        loss: mae
        monitor: val_mae
        mode: min
        """))
    monkeypatch.syspath_prepend(str(tmp_path))
    import sys

    for name in [m for m in sys.modules if m.split(".")[0] == "userpkg"]:  # an earlier test's
        monkeypatch.delitem(sys.modules, name)
    return tmp_path


def compose_user(where, overrides):
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        return compose("train", [*overrides, f"hydra.searchpath=[file://{where / 'user_conf'}]"])


@pytest.mark.parametrize("key", ["data._target_", "task._target_"])
def test_an_untrusted_source_or_task_is_refused_in_one_line(user_package, key):
    import sys

    cfg = compose_user(user_package, ["data=sines", "task=median"])
    # trust the other one, so the refusal is about `key` alone
    cfg.kexp.allow_targets = ["userpkg.data" if key == "task._target_" else "userpkg.tasks"]
    with pytest.raises(KexpError, match=rf"{key}: 'userpkg\.\w+\.\w+' is not allowed.*"
                                        r"kexp\.allow_targets"):
        validate(cfg)
    assert f"userpkg.{'tasks' if key == 'task._target_' else 'data'}" not in sys.modules


@pytest.mark.slow
def test_a_users_source_and_task_train_once_trusted(user_package):
    from kexp.recipe import train

    cfg = compose_user(user_package, [
        "data=sines", "task=median", "kexp.allow_targets=[userpkg]", "model.hidden_units=[32]",
        "optimizer.lr=0.01", "trainer.epochs=20", "trainer.verbose=0", "logger=none",
        f"paths.log_dir={user_package / 'logs'}"])
    validate(cfg)
    metrics = train(cfg)
    assert metrics["test_r2"] > 0.8  # a smooth function of the inputs: an MLP fits it
    assert "best_val_mae" in metrics
