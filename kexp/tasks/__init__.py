"""Tasks: what a run learns and how it is judged, chosen by `task._target_` in conf/task/.

A task owns the head it puts on a backbone's features, the loss and metrics, the monitor
(metric and direction) that callbacks, the tuner and the report judge by, the summary of a
finished run, its evaluation artifacts and the data it accepts. The recipe (`kexp.recipe`),
`kexp.eval` and the tuner's trials only ever talk to a `Task`, so a new kind of learning is
one module here plus one yaml in conf/task/; a user's own task in their own package works
the same way once its module is in `kexp.allow_targets`.

Importing this package does not import TensorFlow or Keras: config checks use it first.
"""

from __future__ import annotations

from collections.abc import Sequence

from omegaconf import DictConfig, OmegaConf

from kexp.config import allowed_targets, import_target
from kexp.errors import KexpError
from kexp.tasks.base import Task

__all__ = ["Task", "make_task", "task_class"]


def task_class(target: str, allowed: Sequence[str] = ()) -> type[Task]:
    """The Task subclass `task._target_` names, imported only if allowlisted."""
    cls = import_target("task._target_", target, allowed)
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        raise KexpError(f"task._target_: '{target}' is not a kexp.tasks.Task subclass")
    return cls


def make_task(cfg: DictConfig) -> Task:
    """The task of the whole run config `cfg` (its `task` group), its settings checked."""
    task_cfg = cfg.get("task")
    if task_cfg is None:  # a run directory from before tasks existed: it classified
        from kexp.config import config_dir

        task_cfg = OmegaConf.load(config_dir() / "task" / "classification.yaml")
    cls = task_class(task_cfg.get("_target_"), allowed_targets(cfg))
    settings = {k: v for k, v in OmegaConf.to_container(task_cfg, resolve=True).items()
                if k != "_target_"}
    cls.check_settings(settings)
    task = cls(settings)
    task.cfg = cfg
    return task
