"""Search spaces: `search.space` maps a training-config key to a distribution.

    optimizer.lr:  {type: float, min: 1.0e-4, max: 1.0e-1, sampling: log}
    model.depth:   {type: choice, values: [11, 13, 16]}
    optimizer:     {type: choice, values: [adam, sgd]}      # a config-group option

A trial's values become command-line overrides (`optimizer=sgd`, `optimizer.lr=0.01`) and the
training config is composed from them exactly as `python -m kexp <overrides>` would, so a
group choice swaps in that group's yaml. Nothing here imports TensorFlow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from kexp.config import is_int, is_number
from kexp.errors import KexpError

TYPES = ("float", "int", "choice", "bool")
SAMPLINGS = ("linear", "log", "reverse_log")
_UNSET = object()


@dataclass(frozen=True)
class Param:
    """One searched key and its distribution."""

    key: str
    type: str
    min: float | None = None
    max: float | None = None
    step: float | None = None
    sampling: str = "linear"
    values: tuple[Any, ...] = ()

    def declare(self, hp: Any) -> Any:
        """Register the parameter with keras-tuner's HyperParameters `hp`; its current value."""
        if self.type == "choice":
            return hp.Choice(self.key, list(self.values))
        if self.type == "bool":
            return hp.Boolean(self.key)
        if self.type == "int":
            return hp.Int(self.key, int(self.min), int(self.max),
                          step=None if self.step is None else int(self.step),
                          sampling=self.sampling)
        return hp.Float(self.key, float(self.min), float(self.max), step=self.step,
                        sampling=self.sampling)


def parse(space: Mapping[str, Any] | DictConfig) -> list[Param]:
    """Check every entry of `search.space`; one-line errors name the key."""
    if isinstance(space, DictConfig):
        space = OmegaConf.to_container(space, resolve=True)
    if not isinstance(space, Mapping) or not space:
        raise KexpError("search.space: must map at least one config key to a distribution, "
                        "e.g. optimizer.lr: {type: float, min: 1e-4, max: 1e-1, sampling: log}")
    return [_param(str(key), spec) for key, spec in space.items()]


def _param(key: str, spec: Any) -> Param:
    where = f"search.space.{key}"
    if not isinstance(spec, Mapping) or spec.get("type") not in TYPES:
        got = spec.get("type") if isinstance(spec, Mapping) else spec
        raise KexpError(f"{where}: type {got!r} is not one of {', '.join(TYPES)}")
    kind = spec["type"]
    allowed = {"float": {"min", "max", "step", "sampling"}, "int": {"min", "max", "step",
               "sampling"}, "choice": {"values"}, "bool": set()}[kind] | {"type"}
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise KexpError(f"{where}: '{unknown[0]}' is not a setting of a {kind}; valid: "
                        f"{', '.join(sorted(allowed))}")
    if kind == "choice":
        values = spec.get("values")
        if not isinstance(values, Sequence) or isinstance(values, str) or len(values) < 1:
            raise KexpError(f"{where}: a choice needs values: [a, b, ...]")
        return Param(key, kind, values=tuple(values))
    if kind == "bool":
        return Param(key, kind)
    check = is_int if kind == "int" else is_number
    low, high, step = spec.get("min"), spec.get("max"), spec.get("step")
    if not (check(low) and check(high) and low < high):
        raise KexpError(f"{where}: a {kind} needs min < max, both {kind}s (got min={low!r}, "
                        f"max={high!r})")
    if step is not None and not (check(step) and step > 0):
        raise KexpError(f"{where}: step {step!r} must be a positive {kind}")
    sampling = spec.get("sampling", "linear")
    if sampling not in SAMPLINGS:
        raise KexpError(f"{where}: sampling {sampling!r} is not one of {', '.join(SAMPLINGS)}")
    if sampling != "linear" and low <= 0:
        raise KexpError(f"{where}: {sampling} sampling needs min > 0 (got {low!r})")
    return Param(key, kind, min=low, max=high, step=step, sampling=sampling)


def searched(values: Mapping[str, Any]) -> dict[str, Any]:
    """A trial's values without keras-tuner's own bookkeeping (Hyperband's tuner/epochs, ...)."""
    return {k: v for k, v in values.items() if not k.startswith("tuner/")}


def group_choices(values: Mapping[str, Any], groups: Sequence[str]) -> dict[str, str]:
    """A trial's config-group choices (`optimizer` -> `sgd`) as MLflow params. The composed
    config holds only the chosen yaml's keys (optimizer.lr, ...), not the choice itself, so
    without these the report's trials table has no `optimizer` column to show."""
    return {key: str(value) for key, value in searched(values).items() if key in groups}


def overrides(values: Mapping[str, Any]) -> list[str]:
    """A trial's values as command-line overrides, group choices first."""
    pairs = sorted(searched(values).items(), key=lambda kv: "." in kv[0])
    return [f"{key}={_literal(value)}" for key, value in pairs]


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return repr(float(value))  # numpy floats (Bayesian's) repr as np.float64(...)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_literal(v) for v in value) + "]"
    return str(value)


def check_keys(params: Sequence[Param], compose: Any, groups: Sequence[str],
               group_options: Any) -> None:
    """Every key names a config-group choice or a key of the training config; else one line.

    `compose(overrides)` composes the training config; a key that exists only under one option
    of a searched group (optimizer.momentum for sgd) is looked up with that option chosen.
    """
    base = compose([])
    choices = [[f"{p.key}={v}" for v in p.values] for p in params if p.key in groups]
    for p in params:
        if p.key in groups:
            options = group_options(p.key)
            bad = [v for v in p.values if v not in options]
            if bad:
                raise KexpError(f"search.space.{p.key}: '{bad[0]}' is not a {p.key} option; "
                                f"valid: {', '.join(options)}")
            continue
        if OmegaConf.select(base, p.key, default=_UNSET) is not _UNSET:
            continue
        if any(OmegaConf.select(compose([c]), p.key, default=_UNSET) is not _UNSET
               for group in choices for c in group):
            continue
        raise KexpError(f"search.space.{p.key}: not a key of the training config (misspelled? "
                        f"`python -m kexp --cfg job` prints every key)")
