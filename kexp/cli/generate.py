"""`python -m kexp.generate run_dir=DIR [n=1000] [label=K] [seed=0] [out=DIR]`: samples of a
finished GAN run's generator (kexp/tasks/gan/samples.py)."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from kexp.cli import import_tensorflow_quietly, precheck, run_guarded
from kexp.config import is_int
from kexp.errors import KexpError


def check(cfg: DictConfig) -> None:
    """The arguments, before TensorFlow loads."""
    if not is_int(cfg.n) or cfg.n < 1:
        raise KexpError(f"n: {cfg.n!r} is not valid; expected a positive integer (images)")
    if cfg.label is not None and (not is_int(cfg.label) or cfg.label < 0):
        raise KexpError(f"label: {cfg.label!r} is not valid; expected a class number >= 0 or "
                        f"null")
    if not is_int(cfg.seed):
        raise KexpError(f"seed: {cfg.seed!r} is not valid; expected an integer")


@hydra.main(version_base="1.3", config_path="pkg://kexp.conf", config_name="generate")
def _hydra_main(cfg: DictConfig) -> None:
    def job() -> str:
        from kexp.run_dir import finished_run

        check(cfg)
        finished_run(cfg.run_dir)  # no config.yaml or model.keras: one line, before TensorFlow
        import_tensorflow_quietly()
        from kexp.tasks.gan.samples import generate

        path = generate(cfg.run_dir, cfg.n, cfg.label, cfg.seed, cfg.out, cfg.unsafe_load)
        return f"kexp.generate: wrote {cfg.n} images to {path} and {path.with_suffix('.png')}"

    print(run_guarded(job), flush=True)


def main() -> None:
    precheck(sys.argv[1:], config_name="generate")
    _hydra_main()


if __name__ == "__main__":
    main()
