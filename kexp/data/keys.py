"""Read and check `data.*` config keys; every bad value becomes a one-line KexpError."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from kexp.config import is_int, is_number
from kexp.errors import KexpError

_UNSET = object()


def get(cfg: DictConfig, key: str, default: Any = _UNSET) -> Any:
    """Value of `key` (dotted for nested keys); `default` when absent, else KexpError."""
    try:
        value = OmegaConf.select(cfg, key, default=_UNSET, throw_on_missing=True)
    except MissingMandatoryValue:
        raise KexpError(f"data.{key} is required but not set (add data.{key}=...)") from None
    if value is _UNSET:
        if default is _UNSET:
            raise KexpError(f"data.{key} is missing from the data config")
        return default
    if OmegaConf.is_config(value):
        return OmegaConf.to_container(value, resolve=True)
    return value


def fraction(cfg: DictConfig, key: str) -> float:
    """A number strictly between 0 and 1."""
    value = get(cfg, key)
    if not is_number(value) or not 0 < value < 1:
        raise KexpError(f"data.{key}: {value!r} must be a number strictly between 0 and 1")
    return float(value)


def positive_int(cfg: DictConfig, key: str, default: Any = _UNSET, allow_none: bool = False):
    """An int >= 1 (or None when allowed)."""
    value = get(cfg, key, default)
    if value is None and allow_none:
        return None
    if not is_int(value) or value < 1:
        extra = " or null" if allow_none else ""
        raise KexpError(f"data.{key}: {value!r} must be a positive integer{extra}")
    return int(value)


def non_negative_int(cfg: DictConfig, key: str, default: Any = _UNSET) -> int:
    """An int >= 0."""
    value = get(cfg, key, default)
    if not is_int(value) or value < 0:
        raise KexpError(f"data.{key}: {value!r} must be an integer >= 0")
    return int(value)


def boolean(cfg: DictConfig, key: str, default: Any = _UNSET) -> bool:
    """true or false."""
    value = get(cfg, key, default)
    if not isinstance(value, bool):
        raise KexpError(f"data.{key}: {value!r} must be true or false")
    return value


def string(cfg: DictConfig, key: str) -> str:
    """A non-empty string."""
    value = get(cfg, key)
    if not isinstance(value, str) or not value:
        raise KexpError(f"data.{key}: {value!r} must be a non-empty string")
    return value


def existing_path(cfg: DictConfig, key: str, kind: str) -> Path:
    """A path that exists; `kind` is 'file' or 'dir'."""
    path = Path(string(cfg, key)).expanduser()
    if not path.exists():
        raise KexpError(f"data.{key}: '{path}' does not exist")
    if kind == "dir" and not path.is_dir():
        raise KexpError(f"data.{key}: '{path}' is not a directory (expected DIR/<class>/<images>)")
    if kind == "file" and not path.is_file():
        raise KexpError(f"data.{key}: '{path}' is not a file")
    return path


def image_size(cfg: DictConfig, default: Any = _UNSET) -> tuple[int, int] | None:
    """[H, W] as two positive ints (None only when the default is None and the key is unset)."""
    value = get(cfg, "image_size", default)
    if value is None and default is None:
        return None
    ok = isinstance(value, (list, tuple)) and len(value) == 2
    if not ok or not all(is_int(v) and v > 0 for v in value):
        raise KexpError(f"data.image_size: {value!r} must be two positive integers [H, W]")
    return int(value[0]), int(value[1])


def channels(cfg: DictConfig) -> int:
    """1 (grey) or 3 (RGB)."""
    value = get(cfg, "channels")
    if value not in (1, 3) or isinstance(value, bool):
        raise KexpError(f"data.channels: {value!r} must be 1 (grey) or 3 (RGB)")
    return int(value)
