"""`python -m kexp.eval run_dir=DIR`: re-evaluate a finished run's model on its test split."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from kexp.cli import import_tensorflow_quietly, precheck, run_guarded


@hydra.main(version_base="1.3", config_path="pkg://kexp.conf", config_name="eval")
def _hydra_main(cfg: DictConfig) -> None:
    def job() -> dict:
        from kexp.run_dir import finished_run

        finished_run(cfg.run_dir)  # no config.yaml or model.keras: one line, before TensorFlow
        import_tensorflow_quietly()
        from kexp.recipe import evaluate

        return evaluate(cfg.run_dir, cfg.batch_size, cfg.unsafe_load)

    metrics = run_guarded(job)
    print(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                   for k, v in metrics.items()))


def main() -> None:
    precheck(sys.argv[1:], config_name="eval")
    _hydra_main()


if __name__ == "__main__":
    main()
