"""`python -m kexp` / `kexp`: train, evaluate and log one experiment.

    python -m kexp model=vgg data=cifar10 trainer.epochs=5
    python -m kexp --help          # every config group and its options
    python -m kexp --cfg job       # the composed config, without importing TensorFlow
    python -m kexp resume=logs/runs/<run>   # continue a killed run where its backup left off
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from kexp.cli import import_tensorflow_quietly, precheck, run_guarded
from kexp.cli.rerun import expand


@hydra.main(version_base="1.3", config_path="pkg://kexp.conf", config_name="train")
def _hydra_main(cfg: DictConfig) -> float | None:
    def job() -> dict:
        from kexp.config.tree import show_config
        from kexp.tracking.tracker import checked_tracker

        show_config(cfg)  # trainer.verbose > 0: the composed config as a tree, before anything
        checked_tracker(cfg)  # an unreachable store fails in ~2 s, before TensorFlow loads
        import_tensorflow_quietly()  # TensorFlow is imported only when a job runs
        from kexp.recipe import train

        return train(cfg)

    metrics = run_guarded(job)
    return metrics.get("test_accuracy") if isinstance(metrics, dict) else None


def main() -> None:
    sys.argv[1:] = expand(sys.argv[1:])  # resume=<run_dir>: that run's own config and directory
    precheck(sys.argv[1:], config_name="train")
    _hydra_main()


if __name__ == "__main__":
    main()
