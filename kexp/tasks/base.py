"""The Task interface every kind of learning implements (classification, regression, ...).

Kept free of TensorFlow and Keras imports at module level: `check_settings` runs in the
config checks, before TensorFlow loads. Methods that build or compile import Keras inside.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kexp.errors import KexpError

if TYPE_CHECKING:
    import keras
    from omegaconf import DictConfig

    from kexp.data import DataBundle, DataSpec

# what every task's settings hold besides its own knobs
COMMON_KEYS = ("targets", "loss", "monitor", "mode")


class Task:
    """What a run learns and how it is judged.

    A subclass sets `LOSSES` (the valid `task.loss` values), `TARGETS` (the target form it
    reads: "classes" or "real") and `KNOBS` (its other settings with their checks), and
    implements `check_data`, `head` and `compile_args`; the rest has defaults that fit most
    tasks. `settings` is the `task` config group without `_target_`.
    """

    LOSSES: tuple[str, ...] = ()
    # the names of the metrics compile_args compiles: Keras logs each as <name> and val_<name>
    METRICS: tuple[str, ...] = ()
    TARGETS = "classes"
    # task key -> (check, what is valid), applied by check_settings before TensorFlow loads
    KNOBS: dict[str, tuple[Any, str]] = {}
    # the metric learning curves plot beside the loss (its train and val curves)
    CURVE_METRIC: str | None = None

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = dict(settings)
        # the whole run config, set by make_task: for a task that needs more than its own
        # settings (a GAN's reference classifier lives under paths.log_dir)
        self.cfg: DictConfig | None = None
        self.loss = settings.get("loss")
        self.monitor = str(settings.get("monitor", "val_loss"))
        self.mode = str(settings.get("mode", "min"))

    @classmethod
    def check_settings(cls, settings: dict[str, Any]) -> None:
        """One-line KexpError for a bad `task.*` value; runs before TensorFlow is imported."""
        loss = settings.get("loss")
        if loss not in cls.LOSSES:
            raise KexpError(f"task.loss: {loss!r} is not valid for this task; expected one of "
                            f"{', '.join(cls.LOSSES)}")
        if settings.get("mode", "min") not in ("min", "max"):
            raise KexpError(f"task.mode: {settings.get('mode')!r} is not valid; expected "
                            f"min or max")
        monitor = settings.get("monitor")
        if monitor not in cls.logged_metrics():
            raise KexpError(f"task.monitor: {monitor!r} is not valid; expected one of "
                            f"{', '.join(cls.logged_metrics())}")
        if settings.get("targets", cls.TARGETS) != cls.TARGETS:
            raise KexpError(f"task.targets: {settings.get('targets')!r} is not valid for this "
                            f"task; expected {cls.TARGETS}")
        for key, (check, valid) in cls.KNOBS.items():
            if key in settings and not check(settings[key]):
                raise KexpError(f"task.{key}: {settings[key]!r} is not valid; expected {valid}")
        unknown = sorted(set(settings) - set(COMMON_KEYS) - set(cls.KNOBS))
        if unknown:
            raise KexpError(f"task.{unknown[0]}: not a setting of this task; valid: "
                            f"{', '.join((*COMMON_KEYS, *cls.KNOBS))}")

    @classmethod
    def logged_metrics(cls) -> tuple[str, ...]:
        """Every per-epoch name Keras logs for this task: a monitor or tuner objective."""
        names = ("loss", *cls.METRICS)
        return (*(f"val_{n}" for n in names), *names)

    # ------------------------------------------------------------------ what the task reads

    def check_model(self, model_cfg: DictConfig, allow_targets: Sequence[str] = ()) -> None:
        """One-line KexpError when the model cannot serve this task; runs before the data
        load. Default: any builder of one network (not a generator-discriminator pair, not
        an encoder-decoder, not a pointer network)."""
        from kexp.models import resolve_builder
        from kexp.models.encoder_decoder import is_encoder_decoder
        from kexp.models.generative import is_generative
        from kexp.models.pointer_net import is_pointer_network

        builder = resolve_builder(model_cfg._target_, allow_targets)
        if is_generative(builder):
            raise KexpError(f"model={model_cfg.get('name', model_cfg._target_)} builds a "
                            f"generator and a discriminator: use it with task=gan")
        if is_encoder_decoder(builder):
            raise KexpError(f"model={model_cfg.get('name', model_cfg._target_)} reads a source "
                            f"sequence and writes a target one: use it with task=seq2seq")
        if is_pointer_network(builder):
            raise KexpError(f"model={model_cfg.get('name', model_cfg._target_)} reads points "
                            f"and points at them: use it with task=pointer")

    def data_config(self, data_cfg: DictConfig) -> DictConfig:
        """The `data` config the task reads its data with (default: as configured)."""
        return data_cfg

    def check_data(self, spec: DataSpec, data_name: str) -> None:
        """One-line KexpError when the data do not fit this task (say what would)."""

    def setup(self, data: DataBundle) -> None:
        """Work a run needs once its data are loaded and before its model is built."""

    # ------------------------------------------------------------------ model and training

    def head(self, features: Any, spec: DataSpec, model_cfg: DictConfig) -> Any:
        """The output layers this task puts on a backbone's features (functional API)."""
        raise NotImplementedError

    def build_model(self, model_cfg: DictConfig, spec: DataSpec,
                    allow_targets: Sequence[str] = ()) -> keras.Model:
        """The backbone `model_cfg` names, with this task's head on its features."""
        from kexp import models

        backbone = models.backbone(model_cfg, spec.input_shape, vocab_size=spec.vocab_size,
                                   allow_targets=allow_targets)
        return models.attach(backbone, lambda x: self.head(x, spec, model_cfg))

    def compile_args(self, spec: DataSpec) -> dict[str, Any]:
        """`loss` and `metrics` for `model.compile`."""
        raise NotImplementedError

    def optimizers(self, optimizer_cfg: DictConfig, schedule: Callable[[float | None], Any]
                   ) -> dict[str, Any]:
        """The optimizer arguments of `model.compile`. `schedule(lr)` is the learning rate
        (schedule) of a given base rate, None for the configured one."""
        from kexp.training.optimizers import build_optimizer

        return {"optimizer": build_optimizer(optimizer_cfg, schedule(None))}

    def callbacks(self, model: keras.Model, data: DataBundle, out: Path | None,
                  tracker: Any, history: dict[str, list[float]] | None = None) -> list[Any]:
        """Callbacks of the task's own that add to the epoch logs before the monitor is read
        (`out`: the run directory, None in a tuning trial; `history`: the epochs a resumed
        run has done)."""
        return []

    def exported(self, model: keras.Model) -> keras.Model:
        """The model a finished run saves and logs (default: the trained model itself)."""
        return model

    # ------------------------------------------------------------------ judging the result

    def summarize(self, history: dict[str, list[float]], test: dict[str, float]
                  ) -> dict[str, Any]:
        """metrics.json's task part: `test_<metric>` for every compiled metric, the epoch the
        monitor liked best (`best_epoch`, 1-based) and its value (`best_<monitor>`)."""
        summary = {f"test_{name}": float(value) for name, value in test.items()}
        values = history.get(self.monitor) or [math.nan]
        pick = max if self.mode == "max" else min
        finite = [i for i, v in enumerate(values) if not math.isnan(v)] or [0]
        best = pick(finite, key=lambda i: values[i])
        summary[f"best_{self.monitor}"] = float(values[best])
        summary["best_epoch"] = best + 1
        summary["epochs"] = len(next(iter(history.values()), []))
        return summary

    def evaluate(self, model: keras.Model, data: DataBundle, out: Path
                 ) -> tuple[list[Path], dict[str, float], dict[str, float]]:
        """Look closer at the test split after training: (files written into `out`, metrics
        for metrics.json and MLflow, metrics for MLflow only). Default: nothing."""
        return [], {}, {}

    def retest(self, model: keras.Model, data: DataBundle) -> dict[str, float]:
        """`kexp.eval`: the saved model (loaded without its compile state) tested again,
        with the loss and metrics the run reported."""
        model.compile(**self.compile_args(data.spec))
        result = model.evaluate(data.test, verbose=0, return_dict=True)
        return {f"test_{k}": float(v) for k, v in result.items()}

    def headline(self, metrics: dict[str, Any]) -> str:
        """The final log line's numbers."""
        test = self.monitor.removeprefix("val_")
        shown = [k for k in (f"test_{test}", "test_loss") if k in metrics]
        return "  ".join(f"{k} {metrics[k]:.4f}" for k in shown)
