"""`task=gan`: learn to generate the data's images, a generator against a discriminator.

The run's model is a `kexp.tasks.gan.model.GAN` built from a generative builder
(model=gan_mlp, model=dcgan); its model.keras is the generator alone. Quality is judged by a
reference classifier of the data set (kexp.tasks.gan.reference): the Fréchet distance on its
features is the monitor (val_fd_refcnn, min), beside KID and the classifier score, and the
same numbers for real training images against the test images show the floor.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from kexp.config import is_int, is_number
from kexp.errors import KexpError
from kexp.tasks.base import Task
from kexp.tasks.gan.reference import NAME as REFERENCE

if TYPE_CHECKING:
    import keras

    from kexp.data import DataBundle, DataSpec

log = logging.getLogger("kexp")

TRACKED = ("d_loss", "g_loss", "d_real_accuracy", "d_fake_accuracy")
SCORES = tuple(f"{m}_{REFERENCE}" for m in ("fd", "kid", "cs"))
# the optimizer keys task.discriminator_optimizer may change (the name stays the generator's)
_D_OPTIMIZER_KEYS = ("lr", "weight_decay", "clipnorm", "clipvalue", "beta_1", "beta_2",
                     "momentum", "nesterov", "rho", "epsilon")


def _positive_int(v: Any) -> bool:
    return is_int(v) and v > 0


class Gan(Task):
    """Generator and discriminator, their losses, and the distances of their samples."""

    LOSSES = ("bce", "lsgan", "hinge", "wgan_gp")  # kexp.tasks.gan.losses
    METRICS = TRACKED
    TARGETS = "classes"
    KNOBS = {
        "conditional": (lambda v: isinstance(v, bool), "true or false"),
        "label_smoothing": (lambda v: is_number(v) and 0 <= v < 1, "a number in [0, 1)"),
        "n_critic": (_positive_int, "a positive integer"),
        "gp_weight": (lambda v: is_number(v) and v >= 0, "a number >= 0"),
        "discriminator_optimizer": (
            lambda v: isinstance(v, dict) and set(v) <= set(_D_OPTIMIZER_KEYS),
            f"a mapping of optimizer keys ({', '.join(_D_OPTIMIZER_KEYS)}), e.g. {{lr: 4e-4}}"),
        "num_samples": (_positive_int, "a positive integer (images per evaluation)"),
        "eval_every": (_positive_int, "a positive integer (epochs)"),
        "reference_epochs": (_positive_int, "a positive integer"),
    }
    CURVE_METRIC = "fd_refcnn"

    @classmethod
    def logged_metrics(cls) -> tuple[str, ...]:
        return (*(f"val_{n}" for n in (*TRACKED, *SCORES)), *TRACKED)

    @property
    def conditional(self) -> bool:
        return bool(self.settings.get("conditional", False))

    # ------------------------------------------------------------------ data

    def data_config(self, data_cfg: DictConfig) -> DictConfig:
        """The images as they are: no per-channel standardization (the generator's tanh
        maps onto pixels in [0, 1]) and no random crop (its padding would be learned as
        black borders); a flip is a fine augmentation for most images and stays."""
        changed, off = _as_pixels(data_cfg)
        if off:
            log.info("task=gan learns pixels in [0, 1]: %s off", ", ".join(off))
        return changed

    def check_data(self, spec: DataSpec, data_name: str) -> None:
        if spec.vocab_size is not None or len(spec.input_shape) != 3:
            raise KexpError(f"task=gan generates images, but data={data_name} holds "
                            f"{'text' if spec.vocab_size is not None else 'table rows'}; use "
                            f"image data (data=digits, data=mnist, data=cifar10, "
                            f"data=image_folder)")
        if spec.num_classes < 2:
            raise KexpError(f"task=gan judges samples with a classifier of the data's classes, "
                            f"but data={data_name} has {spec.num_classes}; use data with at "
                            f"least 2 labelled classes")

    def setup(self, data: DataBundle) -> None:
        """Train the reference classifier of these data if no earlier run has."""
        from kexp.tasks.gan import reference

        reference.ensure(self.reference_dir(data.spec), data,
                         epochs=int(self.settings.get("reference_epochs", 10)),
                         seed=self.seed)

    def reference_dir(self, spec: DataSpec) -> Path:
        from kexp.tasks.gan import reference

        return reference.location(self.cfg.paths.log_dir, _as_pixels(self.cfg.data)[0],
                                  spec.fingerprint)

    @property
    def seed(self) -> int:
        return int(self.cfg.trainer.seed) if self.cfg is not None else 0

    # ------------------------------------------------------------------ model and training

    def check_model(self, model_cfg: DictConfig, allow_targets: Sequence[str] = ()) -> None:
        from kexp.models import resolve_builder
        from kexp.models.generative import is_generative

        if not is_generative(resolve_builder(model_cfg._target_, allow_targets)):
            raise KexpError(f"model={model_cfg.get('name', model_cfg._target_)}: task=gan "
                            f"needs a generator and a discriminator; use model=gan_mlp or "
                            f"model=dcgan")

    def build_model(self, model_cfg: DictConfig, spec: DataSpec,
                    allow_targets: Sequence[str] = ()) -> keras.Model:
        from kexp.models import resolve_builder
        from kexp.tasks.gan import judge
        from kexp.tasks.gan.model import GAN

        self.check_model(model_cfg, allow_targets)
        builder = resolve_builder(model_cfg._target_, allow_targets)
        name = model_cfg.get("name", model_cfg._target_)
        knobs = {k: v for k, v in OmegaConf.to_container(model_cfg, resolve=True).items()
                 if k not in ("_target_", "name")}
        classes = spec.num_classes if self.conditional else 0
        try:
            pair = builder(input_shape=tuple(spec.input_shape), label_classes=classes, **knobs)
        except TypeError as exc:
            raise KexpError(f"model={name}: {str(exc).splitlines()[0]}") from None
        return GAN(pair.generator, pair.discriminator, name=str(name),
                   latent_dim=judge.latent_dim(pair.generator), label_classes=classes,
                   loss=self.loss, n_critic=int(self.settings.get("n_critic", 1)),
                   gp_weight=float(self.settings.get("gp_weight", 10.0)),
                   label_smoothing=float(self.settings.get("label_smoothing", 0.0)),
                   seed=self.seed)

    def optimizers(self, optimizer_cfg: DictConfig, schedule: Callable[[float | None], Any]
                   ) -> dict[str, Any]:
        """The generator's optimizer from the `optimizer` group, the discriminator's from
        the same with `task.discriminator_optimizer`'s keys changed."""
        from kexp.training.optimizers import build_optimizer

        changes = dict(self.settings.get("discriminator_optimizer") or {})
        d_cfg = OmegaConf.merge(optimizer_cfg, changes)
        return {"optimizer": build_optimizer(optimizer_cfg, schedule(None)),
                "d_optimizer": build_optimizer(d_cfg, schedule(changes.get("lr")))}

    def compile_args(self, spec: DataSpec) -> dict[str, Any]:
        return {}

    def callbacks(self, model: keras.Model, data: DataBundle, out: Path | None,
                  tracker: Any, history: dict[str, list[float]] | None = None) -> list[Any]:
        """The monitor's scores every epoch, and (a run, not a trial) the fixed-noise grid."""
        from kexp.tasks.gan import judge
        from kexp.tasks.gan.callbacks import FixedNoiseGrids, QualityMonitor

        val_images, _ = judge.split_images(data.val, self.num_samples)
        found = [QualityMonitor(self.reference_dir(data.spec), val_images, self.num_samples,
                                int(self.settings.get("eval_every", 1)), seed=self.seed,
                                history=history)]
        return found + ([FixedNoiseGrids(out, tracker)] if out is not None else [])

    @property
    def num_samples(self) -> int:
        return int(self.settings.get("num_samples", 5000))

    def exported(self, model: keras.Model) -> keras.Model:
        return model.generator

    # ------------------------------------------------------------------ judging the result

    def evaluate(self, model: keras.Model, data: DataBundle, out: Path
                 ) -> tuple[list[Path], dict[str, float], dict[str, float]]:
        """Samples of the kept generator against the test images (test_fd_refcnn, ...), real
        training images against them (real_fd_refcnn, ...: the floor), the final grid, the
        GIF of the epochs' grids and the samples' class histogram (a warning on collapse)."""
        from kexp.tasks.gan import judge, pictures, quality

        test_judge = self._test_judge(data)
        scored, probs = self._score(model.generator, test_judge)
        if model.label_classes:
            scored[f"label_accuracy_{REFERENCE}"] = float(np.mean(
                np.argmax(probs, axis=1) == np.arange(len(probs)) % model.label_classes))
        train_images, _ = judge.split_images(data.train, self.num_samples)
        floor, _ = test_judge.scores(train_images)
        counts = quality.class_histogram(probs, data.spec.num_classes)
        warning = quality.collapse_warning(counts, data.spec.class_names)
        if warning:
            log.warning("task=gan: %s", warning)
        paths = [pictures.save_grid(model.fixed_grid_images(), out / pictures.GRID_FILE,
                                    columns=10),
                 pictures.plot_histogram(counts, data.spec.class_names,
                                         out / pictures.HISTOGRAM_FILE)]
        frames = sorted((out / pictures.GRID_DIR).glob("epoch_*.png"))
        gif = pictures.save_gif(frames, out / pictures.GIF_FILE)
        if gif is not None:
            paths.append(gif)
        found = {**{f"test_{k}": v for k, v in scored.items()},
                 **{f"real_{k}": v for k, v in floor.items()},
                 "mode_collapse_warning": bool(warning)}
        shares = {f"sample_share_{i}": float(c / max(1, counts.sum()))
                  for i, c in enumerate(counts)}
        return paths, found, {**{f"real_{k}": v for k, v in floor.items()}, **shares}

    def retest(self, model: keras.Model, data: DataBundle) -> dict[str, float]:
        """`kexp.eval` of a GAN run: its generator's samples scored against the test images
        again."""
        scored, _ = self._score(model, self._test_judge(data))
        return {f"test_{k}": v for k, v in scored.items()}

    def _test_judge(self, data: DataBundle) -> Any:
        from kexp.tasks.gan import judge

        images, _ = judge.split_images(data.test)
        return judge.Judge(self.reference_dir(data.spec), images)

    def _score(self, generator: keras.Model, test_judge: Any
               ) -> tuple[dict[str, float], np.ndarray]:
        """`num_samples` images of `generator` from a fixed seed, scored by `test_judge`."""
        from kexp.tasks.gan import judge

        images, _ = judge.sample(generator, self.num_samples, seed=self.seed)
        return test_judge.scores(judge.to_unit(images))

    def headline(self, metrics: dict[str, Any]) -> str:
        shown = [k for k in ("test_fd_refcnn", "real_fd_refcnn", "test_cs_refcnn")
                 if k in metrics]
        return "  ".join(f"{k} {metrics[k]:.4f}" for k in shown)


def _as_pixels(data_cfg: DictConfig) -> tuple[DictConfig, list[str]]:
    """`data_cfg` with standardization and the random crop off, and the keys turned off."""
    changed = OmegaConf.create(OmegaConf.to_container(data_cfg))
    off = []
    for key in ("mean", "std"):
        if changed.get(key) is not None:
            changed[key] = None
            off.append(f"data.{key}")
    if OmegaConf.select(changed, "augment.crop_padding", default=0):
        changed.augment.crop_padding = 0
        off.append("data.augment.crop_padding")
    return changed, off
