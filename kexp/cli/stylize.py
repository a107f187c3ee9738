"""`python -m kexp.stylize content=photo.jpg style=painting.jpg`: neural style transfer with an
ImageNet VGG (the library: kexp/style_transfer.py). The config is checked, the images read and
the weights found before TensorFlow loads, so a mistake is one line in about a second.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from kexp.cli import import_tensorflow_quietly, precheck, run_guarded


def stylize(cfg: DictConfig) -> str:
    """The job of `python -m kexp.stylize`: stylise, write, log; return the line to print."""
    from kexp import style_transfer
    from kexp.tracking.tracker import make_tracker

    job = style_transfer.plan(cfg)
    tracker = make_tracker(cfg.logger, Path(cfg.paths.log_dir), run_dir=job.out)
    tracker.check()  # an unreachable store fails now, not after the optimisation
    import_tensorflow_quietly()
    result = style_transfer.run(job, tracker)
    losses = result.history["total_loss"]
    return (f"kexp.stylize: wrote {job.out / 'stylized.png'} "
            f"(steps {result.steps}, loss {losses[0]:.4g} -> {losses[-1]:.4g})")


@hydra.main(version_base="1.3", config_path="pkg://kexp.conf", config_name="stylize")
def _hydra_main(cfg: DictConfig) -> None:
    print(run_guarded(lambda: stylize(cfg)), flush=True)


def optimizer_shorthand(argv: list[str]) -> list[str]:
    """`optimizer=NAME` -> `solver=NAME`, the key the choice is kept under.

    `optimizer` is a config group of the training config (conf/optimizer/), in the same
    config folder, so Hydra would take `optimizer=lbfgs` for one of its options and refuse it."""
    return [f"solver={a.partition('=')[2]}" if a.startswith("optimizer=") else a for a in argv]


def main() -> None:
    sys.argv[1:] = optimizer_shorthand(sys.argv[1:])
    precheck(sys.argv[1:], config_name="stylize")
    _hydra_main()


if __name__ == "__main__":
    main()
