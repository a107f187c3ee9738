"""`python -m kexp.sync run_dir=DIR`: log a finished run directory into MLflow.

For a run whose tracking store was unreachable during training (it said so and went on):
once the store is back, this uploads what the run directory keeps. Logic in
kexp/tracking/upload.py; TensorFlow is imported only to log the model.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from kexp.cli import precheck, run_guarded


@hydra.main(version_base="1.3", config_path="pkg://kexp.conf", config_name="sync")
def _hydra_main(cfg: DictConfig) -> None:
    def job() -> str:
        from kexp.tracking.upload import sync_run_dir

        folder = Path(cfg.run_dir)
        report = sync_run_dir(folder, cfg.logger.tracking_uri, cfg.logger.experiment,
                              cfg.logger.log_model)
        return report.line(folder)

    print(run_guarded(job), flush=True)


def main() -> None:
    precheck(sys.argv[1:], config_name="sync")
    _hydra_main()


if __name__ == "__main__":
    main()
