"""Model builders, one public function per family, chosen by `model._target_` in conf/model/.

Adding a family is one file here (a function `family(input_shape, num_classes, **knobs)`
returning a `keras.Model`) plus one yaml in conf/model/ whose `_target_` names it. A
user's own builder works the same way from their own package.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf

from kexp.errors import KexpError

# keys in a model yaml that describe the model rather than feed the builder
_META_KEYS = ("_target_", "name")


def resolve_builder(target: str) -> Callable[..., Any]:
    module_name, _, func_name = target.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), func_name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise KexpError(f"model._target_: cannot import '{target}' ({exc})") from None


def build(model_cfg: DictConfig, input_shape: Sequence[int], num_classes: int):
    """Build the model that `model_cfg` describes for inputs of `input_shape`.

    Args:
        model_cfg: the `model` config group: `_target_` (dotted path of the builder),
            `name`, and the builder's keyword arguments.
        input_shape: shape of one example, e.g. `(32, 32, 3)`.
        num_classes: number of output classes.

    Returns:
        An uncompiled `keras.Model` with a float32 softmax output.
    """
    builder = resolve_builder(model_cfg._target_)
    knobs = {k: v for k, v in OmegaConf.to_container(model_cfg, resolve=True).items()
             if k not in _META_KEYS}
    accepted = inspect.signature(builder).parameters
    unknown = sorted(k for k in knobs if k not in accepted)
    if unknown:
        raise KexpError(
            f"model.{unknown[0]}: not a setting of {model_cfg._target_}; "
            f"valid: {', '.join(p for p in accepted if p not in ('input_shape', 'num_classes'))}"
        )
    try:
        return builder(input_shape=tuple(input_shape), num_classes=num_classes, **knobs)
    except ValueError as exc:
        # Keras reports an input too small for the architecture deep inside a layer
        raise KexpError(
            f"model={model_cfg.get('name', model_cfg._target_)} cannot take inputs of shape "
            f"{tuple(input_shape)}: {str(exc).splitlines()[0]}"
        ) from None
