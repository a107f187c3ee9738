"""Learning-rate schedules from the `schedule` group, stepped every batch."""

from __future__ import annotations

import keras
from omegaconf import DictConfig

from kexp.config import check


def build_schedule(cfg: DictConfig, lr: float, steps_per_epoch: int,
                   epochs: int) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """The learning rate, or a schedule over `epochs * steps_per_epoch` optimizer steps."""
    check("schedule.name", cfg.name)  # config.validate has, unless called from Python
    total = max(1, epochs * steps_per_epoch)
    if cfg.name == "constant":
        return float(lr)
    if cfg.name == "cosine":
        warmup = _warmup_steps(cfg, steps_per_epoch, total)
        if warmup:
            return keras.optimizers.schedules.CosineDecay(
                initial_learning_rate=0.0, decay_steps=max(1, total - warmup),
                alpha=float(cfg.min_lr_ratio), warmup_target=float(lr), warmup_steps=warmup)
        return keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=float(lr), decay_steps=total, alpha=float(cfg.min_lr_ratio))
    if cfg.name == "step":
        milestones = sorted(int(m) for m in check("schedule.milestones", cfg.milestones))
        boundaries = [m * steps_per_epoch for m in milestones]
        values = [float(lr) * float(cfg.gamma) ** i for i in range(len(boundaries) + 1)]
        return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)
    if cfg.name == "warmup":
        warmup = _warmup_steps(cfg, steps_per_epoch, total)
        # alpha=1 makes the cosine part flat: linear warm-up, then constant
        return keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=float(lr) * float(cfg.start_ratio), decay_steps=total,
            alpha=1.0, warmup_target=float(lr), warmup_steps=max(1, warmup))
    raise AssertionError(f"schedule.name {cfg.name!r} has a rule in kexp.config but no schedule")


def _warmup_steps(cfg: DictConfig, steps_per_epoch: int, total: int) -> int:
    epochs = check("schedule.warmup_epochs", cfg.get("warmup_epochs", 0) or 0)
    return min(int(round(epochs * steps_per_epoch)), total - 1)
