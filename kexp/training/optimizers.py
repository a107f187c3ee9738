"""Optimizers from the `optimizer` group."""

from __future__ import annotations

import keras
from omegaconf import DictConfig, OmegaConf

from kexp.errors import KexpError

# config keys that are not constructor arguments of the Keras optimizer
_NOT_KWARGS = ("name", "lr")


def build_optimizer(cfg: DictConfig, learning_rate) -> keras.optimizers.Optimizer:
    """The Keras optimizer `cfg.name` with `learning_rate` (a float or a schedule)."""
    kwargs = {k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items()
              if k not in _NOT_KWARGS and v is not None}
    try:
        return keras.optimizers.get(
            {"class_name": cfg.name, "config": {"learning_rate": learning_rate, **kwargs}})
    except (ValueError, TypeError) as exc:
        raise KexpError(f"optimizer={cfg.name}: {str(exc).splitlines()[0]}") from None
