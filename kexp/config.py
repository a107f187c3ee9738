"""Checks on a composed config that Hydra cannot make on plain YAML: types and ranges.

They run before TensorFlow is imported or data is read, so a typo costs a second,
not a stack trace after the first epoch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from kexp.errors import KexpError
from kexp.tuning import distributed


def validate_types(cfg: DictConfig, defaults: DictConfig) -> None:
    """Every value must have the type of its default: `trainer.epochs=abc` names the key."""
    given = OmegaConf.to_container(cfg, resolve=False)
    for key, default in _leaves(OmegaConf.to_container(defaults, resolve=False)):
        if key.startswith("hydra.") or default is None or _is_interpolation(default):
            continue
        value = _get(given, key)
        if value is None or _is_interpolation(value) or _same_kind(value, default):
            continue
        raise KexpError(f"{key}: expected {_kind(default)}, got {value!r}")


def check_complete(cfg: DictConfig) -> None:
    """A `???` left in the config (data.path for npz/image_folder) is named before any work."""
    tree = OmegaConf.to_container(cfg, resolve=False)
    # Hydra's own section holds `???` keys it fills in itself (hydra.job.num)
    missing = sorted(k for k, v in _leaves(tree) if v == "???" and not k.startswith("hydra."))
    if missing:
        raise KexpError(f"{missing[0]} is required here: add {missing[0]}=... to the command")


def validate(cfg: DictConfig) -> None:
    """Range checks on the keys every run reads."""
    for key, (check, expected) in RULES.items():
        value = OmegaConf.select(cfg, key, default=_MISSING)
        if value is _MISSING:
            continue
        if not check(value):
            raise KexpError(f"{key}: {value!r} is not valid; expected {expected}")


_MISSING = object()


def is_int(v: Any) -> bool:
    """True for ints (numpy's too) but not bools, which Python counts as ints."""
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
    """True for ints and floats (numpy's too) but not bools."""
    return is_int(v) or isinstance(v, (float, np.floating))


def _positive_int(v: Any) -> bool:
    return is_int(v) and v > 0


def _non_negative_number(v: Any) -> bool:
    return is_number(v) and v >= 0


def _positive_number(v: Any) -> bool:
    return _non_negative_number(v) and v > 0


def _one_of(*options: Any) -> Callable[[Any], bool]:
    return lambda v: any(v == o and type(v) is type(o) for o in options)


RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "trainer.epochs": (_positive_int, "a positive integer"),
    "trainer.batch_size": (_positive_int, "a positive integer"),
    "trainer.steps_per_execution": (_positive_int, "a positive integer"),
    "trainer.seed": (is_int, "an integer"),
    "trainer.verbose": (_one_of(0, 1, 2), "0, 1 or 2"),
    "trainer.precision": (
        _one_of("float32", "mixed_float16", "mixed_bfloat16"),
        "float32, mixed_float16 or mixed_bfloat16",
    ),
    "trainer.jit_compile": (_one_of(True, False, "auto"), "true, false or auto"),
    "optimizer.lr": (_positive_number, "a positive number"),
    "schedule.name": (
        _one_of("constant", "cosine", "step", "warmup"),
        "constant, cosine, step or warmup",
    ),
    "strategy.name": (
        _one_of("auto", "cpu", "one_device", "mirrored", "multi_worker", "tpu"),
        "auto, cpu, one_device, mirrored, multi_worker or tpu",
    ),
    "logger.backend": (_one_of("mlflow", "none"), "mlflow or none"),
    "data.augment_on": (_one_of("pipeline", "model"), "pipeline or model"),
    "model.dropout": (lambda v: _non_negative_number(v) and v < 1, "a number in [0, 1)"),
    "model.l1": (_non_negative_number, "a number >= 0"),
    "model.l2": (_non_negative_number, "a number >= 0"),
    "model.width": (_positive_number, "a positive number"),
    "tuner.distributed.role": (_one_of(*distributed.ROLES), ", ".join(distributed.ROLES)),
    "tuner.distributed.address": (distributed.is_address, "host:port, e.g. 127.0.0.1:8000"),
}


def _leaves(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _leaves(v, f"{prefix}{k}.")
    else:
        yield prefix[:-1], node


def _get(tree: Any, dotted: str) -> Any:
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        if not isinstance(tree, dict):
            if tree is not None and not _is_interpolation(tree):
                # `logger=none` where logger is a mapping (no config group to pick from)
                where = ".".join(parts[:i])
                raise KexpError(f"{where}: expected a mapping of settings (e.g. {dotted}=...), "
                                f"got {tree!r}")
            return None
        if part not in tree:
            return None
        tree = tree[part]
    return tree


def _is_interpolation(v: Any) -> bool:
    return isinstance(v, str) and "${" in v


def _same_kind(value: Any, default: Any) -> bool:
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return is_int(value)
    if isinstance(default, float):
        return is_number(value)
    if isinstance(default, list):
        return isinstance(value, list)
    if isinstance(default, dict):
        return isinstance(value, dict)
    return True  # strings may be replaced by anything the consumer accepts (e.g. auto -> true)


def _kind(default: Any) -> str:
    if isinstance(default, bool):
        return "true or false"
    if isinstance(default, int):
        return "an integer"
    if isinstance(default, float):
        return "a number"
    if isinstance(default, list):
        return "a list, e.g. [1, 2]"
    if isinstance(default, dict):
        return "a mapping"
    return type(default).__name__
