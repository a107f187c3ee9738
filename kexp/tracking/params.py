"""Turning a nested config into MLflow params with dotted keys."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MAX_PARAM_LENGTH = 6000  # MLflow's limit on one param value


def flatten(tree: Mapping[str, Any], prefix: str = "", typed: bool = False) -> dict[str, Any]:
    """`{"optimizer": {"lr": 0.1}}` -> `{"optimizer.lr": "0.1"}`; lists stay one value.

    `typed` keeps numbers, bools and strings as they are (TensorBoard's HParams sorts and
    plots numbers); anything else is still its text."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}.", typed))
        elif typed and isinstance(value, (bool, int, float)):
            flat[name] = value
        else:
            flat[name] = str(value)[:MAX_PARAM_LENGTH]
    return flat
