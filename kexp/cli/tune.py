"""`python -m kexp.tune` / `kexp-tune`: a keras-tuner search whose trials are kexp training runs.

    python -m kexp.tune                                  # random search on digits, offline
    python -m kexp.tune tuner=hyperband model=cnn data=mnist tuner.max_epochs=27
    python -m kexp.tune --help                           # tuners, search spaces, every key
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from kexp.cli import import_tensorflow_quietly, precheck, run_guarded

# overrides that shape the search rather than the training runs it makes
_SEARCH_KEYS = ("tuner", "search", "hydra")


@hydra.main(version_base="1.3", config_path="pkg://kexp.conf", config_name="tune")
def _hydra_main(cfg: DictConfig) -> float | None:
    from hydra.core.hydra_config import HydraConfig

    base = [o for o in HydraConfig.get().overrides.task
            if o.lstrip("+~").split("=")[0].split(".")[0] not in _SEARCH_KEYS]

    def job() -> dict:
        import_tensorflow_quietly()  # TensorFlow is imported only when a job runs
        from kexp.tuning.search import tune

        return tune(cfg, base)

    summary = run_guarded(job)
    return summary.get("best_score") if isinstance(summary, dict) else None


def main() -> None:
    precheck(sys.argv[1:], config_name="tune")
    _hydra_main()


if __name__ == "__main__":
    main()
