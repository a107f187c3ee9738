"""Checks on a composed config that Hydra cannot make on plain YAML: types and ranges.

They run before TensorFlow is imported or data is read, so a typo costs a second,
not a stack trace after the first epoch.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
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
    """Range checks on the keys every run reads, and the `_target_` allowlist."""
    for key, (check, expected) in RULES.items():
        value = OmegaConf.select(cfg, key, default=_MISSING)
        if value is _MISSING:
            continue
        if not check(value):
            raise KexpError(f"{key}: {value!r} is not valid; expected {expected}")
    target = OmegaConf.select(cfg, "model._target_", default=None)
    if target is not None:
        check_target("model._target_", target, allowed_targets(cfg))


# Modules whose callables a config may name as `_target_` without the user opting in: a
# `_target_` is imported and called, so a config from elsewhere (a shared experiment, a
# downloaded best.yaml) could otherwise run `os.system` or any other installed function.
TRUSTED_TARGETS = ("kexp", "keras")


def allowed_targets(cfg: DictConfig) -> list[str]:
    """`kexp.allow_targets`: module prefixes or dotted names the user trusts besides kexp, keras."""
    value = OmegaConf.select(cfg, "kexp.allow_targets", default=None)
    if value is None:
        return []
    value = OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise KexpError(f"kexp.allow_targets: {value!r} is not valid; expected a list of module "
                        f"names or dotted paths, e.g. kexp.allow_targets=[mypkg.models]")
    return value


def check_target(key: str, target: Any, allowed: Sequence[str] = ()) -> None:
    """Refuse a `_target_` outside kexp.*, keras.* and `allowed`, before anything is imported."""
    if not isinstance(target, str) or not target.strip():
        raise KexpError(f"{key}: {target!r} is not valid; expected the dotted path of a builder "
                        f"function, e.g. kexp.models.mlp.mlp")
    if any(target == prefix or target.startswith(prefix + ".")
           for prefix in (*TRUSTED_TARGETS, *allowed)):
        return
    raise KexpError(f"{key}: {target!r} is not allowed; kexp only builds from kexp.* and "
                    f"keras.*; add its module to kexp.allow_targets=[...] to trust it")


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


def _or_null(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: v is None or check(v)


def _non_negative_int(v: Any) -> bool:
    return is_int(v) and v >= 0


def _open_fraction(v: Any) -> bool:
    return is_number(v) and 0 < v < 1


def _below_one(v: Any) -> bool:
    return _non_negative_number(v) and v < 1


def _sizes(v: Any) -> bool:
    """A layer size or a list of them (an empty list: no such layers)."""
    if isinstance(v, (list, tuple)) or OmegaConf.is_list(v):
        return all(_positive_int(x) for x in v)
    return _positive_int(v)


def _image_size(v: Any) -> bool:
    return (isinstance(v, (list, tuple)) or OmegaConf.is_list(v)) and len(v) == 2 and \
        all(_positive_int(x) for x in v)


def _existing_path(v: Any) -> bool:
    # a missing data file is named here, in half a second, rather than after TensorFlow loads
    return isinstance(v, str) and bool(v) and Path(v).expanduser().exists()


def _usable_dir(v: Any) -> bool:
    """A directory, or a path whose nearest existing parent is a directory kexp may write to."""
    if not isinstance(v, str) or not v:
        return False
    path = Path(v).expanduser().absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path.is_dir() and os.access(path, os.W_OK | os.X_OK)


# model knobs that are layer sizes or counts, in whichever families have them
_MODEL_SIZES = ("hidden_units", "dense_units", "filters", "dilations", "kernel_size", "units",
                "layers", "embedding_dim", "embed_dim", "ff_dim", "num_heads", "num_blocks",
                "growth_rate", "attention_units", "attention_reduction")


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
    "model.recurrent_dropout": (_below_one, "a number in [0, 1)"),
    **{f"model.{key}": (_sizes, "a positive integer or a list of positive integers")
       for key in _MODEL_SIZES},
    "optimizer.weight_decay": (_or_null(_non_negative_number), "a number >= 0 or null"),
    "optimizer.clipnorm": (_or_null(_positive_number), "a positive number or null"),
    "optimizer.momentum": (_below_one, "a number in [0, 1)"),
    "optimizer.beta_1": (_below_one, "a number in [0, 1)"),
    "optimizer.beta_2": (_below_one, "a number in [0, 1)"),
    "optimizer.rho": (_below_one, "a number in [0, 1)"),
    "schedule.warmup_epochs": (_non_negative_int, "an integer >= 0"),
    "schedule.min_lr_ratio": (lambda v: _non_negative_number(v) and v <= 1, "a number in [0, 1]"),
    "schedule.start_ratio": (lambda v: _positive_number(v) and v <= 1, "a number in (0, 1]"),
    "schedule.gamma": (_positive_number, "a positive number"),
    "schedule.milestones": (_sizes, "a list of positive epoch numbers, e.g. [30, 60]"),
    "callbacks.early_stopping.patience": (_non_negative_int, "an integer >= 0"),
    "callbacks.early_stopping.min_delta": (_non_negative_number, "a number >= 0"),
    "callbacks.checkpoint.mode": (_one_of("max", "min", "auto"), "max, min or auto"),
    "callbacks.reduce_lr.patience": (_non_negative_int, "an integer >= 0"),
    "callbacks.reduce_lr.factor": (_open_fraction, "a number strictly between 0 and 1"),
    "callbacks.reduce_lr.min_lr": (_non_negative_number, "a number >= 0"),
    # the data keys whose value alone tells; files are read (and checked) by the loaders
    "data.path": (_existing_path, "a path that exists"),
    "data.test_path": (_or_null(_existing_path), "a path that exists, or null"),
    "data.val_fraction": (_open_fraction, "a number strictly between 0 and 1"),
    "data.test_fraction": (_open_fraction, "a number strictly between 0 and 1"),
    "data.subset": (_or_null(_positive_int), "a positive integer or null"),
    "data.shuffle_buffer": (_positive_int, "a positive integer"),
    "data.scale": (lambda v: v == "auto" or _positive_number(v), "a positive number or auto"),
    "data.image_size": (_image_size, "two positive integers [H, W]"),
    "data.channels": (_one_of(1, 3), "1 (grey) or 3 (RGB)"),
    "data.sequence_length": (_positive_int, "a positive integer"),
    "data.max_tokens": (_or_null(lambda v: is_int(v) and v >= 3),
                        "an integer >= 3 (ids 0 and 1 are padding and OOV) or null"),
    "paths.log_dir": (_usable_dir, "a directory kexp can create and write to"),
    "run_name": (_or_null(lambda v: isinstance(v, str)),
                 "a string or null (quote digits: run_name=\"'2024'\")"),
    "batch_size": (_or_null(_positive_int), "a positive integer or null"),  # kexp.eval
    "unsafe_load": (_one_of(True, False), "true or false"),  # kexp.eval
    "tuner.distributed.role": (_one_of(*distributed.ROLES), ", ".join(distributed.ROLES)),
    "tuner.distributed.address": (distributed.is_address, "host:port, e.g. 127.0.0.1:8000"),
    # the metrics every kexp model is compiled with; anything else fails every trial
    "tuner.objective": (_one_of("val_accuracy", "val_loss", "accuracy", "loss"),
                        "val_accuracy, val_loss, accuracy or loss"),
    "tuner.direction": (_one_of("max", "min"), "max or min"),
    "tuner.max_trials": (_positive_int, "a positive integer"),
    "tuner.max_failed_trials": (_positive_int, "a positive integer"),
    "tuner.max_epochs": (_positive_int, "a positive integer"),
    "tuner.factor": (lambda v: is_int(v) and v >= 2, "an integer >= 2"),
    "tuner.hyperband_iterations": (_positive_int, "a positive integer"),
    "tuner.num_initial_points": (_or_null(_positive_int), "a positive integer or null"),
}


def _leaves(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    # an empty mapping (tags: {}) is a leaf of its own, so `tags=abc` is still type-checked
    if isinstance(node, dict) and (node or not prefix):
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
