"""Optimizers from the `optimizer` group."""

from __future__ import annotations

import difflib
import inspect
import re

import keras
from omegaconf import DictConfig, OmegaConf

from kexp.errors import KexpError

# config keys that are not constructor arguments of the Keras optimizer
_NOT_KWARGS = ("name", "lr")
# Keras allows one gradient-clipping rule at a time
_CLIPPING = ("clipnorm", "clipvalue", "global_clipnorm")
# constructor arguments a config must not set: kexp passes them itself
_RESERVED = {"learning_rate": "the learning rate is optimizer.lr (shaped by the schedule group)",
             "name": "optimizer.name picks the optimizer"}
# wrappers around another optimizer, not optimizers a config can name
_WRAPPERS = ("Optimizer", "LossScaleOptimizer", "MultiOptimizer")


def build_optimizer(cfg: DictConfig, learning_rate) -> keras.optimizers.Optimizer:
    """The Keras optimizer `cfg.name` with `learning_rate` (a float or a schedule).

    Every other non-null key of `cfg` but `lr` is a constructor argument. A wrong name, a key the
    optimizer does not take or a value Keras refuses is a one-line KexpError naming the key."""
    name = cfg.name
    kwargs = {k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items()
              if k not in _NOT_KWARGS and v is not None}
    cls = _optimizer_class(name)
    accepted = _arguments(cls)
    for key in kwargs:
        if key in _RESERVED:
            raise KexpError(f"optimizer={name}: optimizer.{key} is not a setting; "
                            f"{_RESERVED[key]}")
        if key not in accepted:
            close = difflib.get_close_matches(key, accepted, n=1)
            hint = f"did you mean optimizer.{close[0]}? " if close else ""
            raise KexpError(f"optimizer={name}: optimizer.{key} is not a setting of "
                            f"{cls.__name__}; {hint}it takes {', '.join(sorted(accepted))}")
    clipping = [f"optimizer.{k}" for k in _CLIPPING if k in kwargs]
    if len(clipping) > 1:
        raise KexpError(f"optimizer={name}: {' and '.join(clipping)} are set together; Keras clips "
                        "gradients by one rule: set all but one to null")
    try:
        return cls(learning_rate=learning_rate, **kwargs)
    except (ValueError, TypeError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        named = [k for k in kwargs if re.search(rf"\b{k}\b", message)]
        where = f"optimizer.{named[0]}={kwargs[named[0]]!r}: " if named else ""
        raise KexpError(f"optimizer={name}: {where}{message}") from None


def optimizer_names() -> list[str]:
    """The names `optimizer.name` accepts (lower case, as the yaml files write them)."""
    return sorted(_public_optimizers())


def _public_optimizers() -> dict[str, type]:
    return {obj.__name__.lower(): obj for obj in vars(keras.optimizers).values()
            if isinstance(obj, type) and issubclass(obj, keras.optimizers.Optimizer)
            and obj.__name__ not in _WRAPPERS}


def _optimizer_class(name: object) -> type:
    found = _public_optimizers().get(str(name).lower())
    if found is None and isinstance(name, str):  # a custom one registered with Keras
        registered = keras.saving.get_registered_object(name)
        if isinstance(registered, type) and issubclass(registered, keras.optimizers.Optimizer):
            found = registered
    if found is None:
        raise KexpError(f"optimizer.name: {name!r} is not a Keras optimizer; expected one of "
                        f"{', '.join(optimizer_names())}")
    return found


def _arguments(cls: type) -> list[str]:
    """The keyword arguments `cls` takes, its base classes' included (most pass **kwargs up)."""
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        try:
            params = inspect.signature(init).parameters.values()
        except (TypeError, ValueError):  # an __init__ written in C: no signature to read
            continue
        names.update(p.name for p in params
                     if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
    return sorted(names - {"self", *_RESERVED})
