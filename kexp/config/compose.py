"""Where kexp's configs live and how to compose one outside a Hydra app (no TensorFlow).

The entry points, the report, `from_run=`, the config reference and the tests compose through
here, so a config composed from Python is the config `python -m kexp` would run.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from kexp.errors import KexpError

CONFIG_MODULE = "kexp.conf"  # conf/ in a checkout, shipped in the wheel under this name

# hydra.run.dir names each run's directory with the process id (train.yaml)
OmegaConf.register_new_resolver("kexp_pid", lambda: str(os.getpid()), use_cache=True, replace=True)


def config_dir() -> Path:
    """The folder holding train.yaml: conf/ in a checkout, kexp/conf in an installed wheel."""
    import kexp.conf

    return Path(kexp.conf.__file__).parent


def group_options(group: str, root: Path | None = None) -> list[str]:
    """The options of a config group (the yaml files of its folder), sorted."""
    folder = (root or config_dir()) / group
    return sorted(p.stem for p in folder.glob("*.yaml"))


def groups(root: Path | None = None) -> list[str]:
    """The config groups: folders of `root` that hold yaml files."""
    root = root or config_dir()
    return sorted(p.name for p in root.iterdir() if p.is_dir() and any(p.glob("*.yaml")))


def compose(root: Path, config_name: str, overrides: Sequence[str]) -> DictConfig:
    """Compose `config_name` from `root` with `overrides`; Hydra's many-line errors become one
    KexpError line."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_dir(str(root), version_base="1.3"):
            return hydra_compose(config_name, overrides=list(overrides), return_hydra_config=True)
    except (HydraException, OmegaConfBaseException) as exc:
        raise KexpError(one_line(exc)) from None


def one_line(exc: BaseException) -> str:
    """Hydra's or OmegaConf's error as the one line a user needs."""
    text = str(exc).strip()
    if text.startswith("Could not override '"):
        key = text.split("'", 2)[1]
        return f"unknown config key '{key}' (misspelled? `--cfg job` prints every key)"
    return text.splitlines()[0] if text else type(exc).__name__
