"""`python -m kexp.eval run_dir=DIR`: re-evaluate a finished run's model on its test split."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from kexp.cli import import_tensorflow_quietly, precheck, run_guarded


def evaluate(run_dir: str, batch_size: int | None = None, unsafe_load: bool = False
             ) -> dict[str, float]:
    """Load `run_dir`'s config.yaml and model.keras, return the task's test metrics (loss,
    accuracy, ... as the run reported them) and the test split's size.

    The model is loaded in Keras' safe mode unless `unsafe_load`: a model.keras is a file
    anyone could have handed over, and a Lambda layer in it would run its code on load."""
    import json
    from pathlib import Path

    from omegaconf import OmegaConf

    from kexp import run_dir as outputs
    from kexp.errors import KexpError

    folder = Path(run_dir)
    for name in (outputs.CONFIG_FILE, outputs.MODEL_FILE):
        if not (folder / name).is_file():
            raise KexpError(f"run_dir: '{folder}' has no {name}; pass the directory of a "
                            f"finished kexp run (it holds config.yaml and model.keras)")
    import_tensorflow_quietly()
    from kexp import data as datasets
    from kexp.models import load_model
    from kexp.tasks import make_task

    cfg = OmegaConf.load(folder / outputs.CONFIG_FILE)
    task = make_task(cfg)
    # the model first: a refused file is reported before the data are read
    model = load_model(folder / outputs.MODEL_FILE, safe_mode=not unsafe_load, compile=False)
    data = datasets.load(cfg.data, global_batch_size=batch_size or cfg.trainer.batch_size,
                         seed=cfg.trainer.seed)
    task.check_data(data.spec, cfg.data.name)
    model.compile(**task.compile_args(data.spec))  # the loss and metrics the run reported
    result = model.evaluate(data.test, verbose=0, return_dict=True)
    metrics = {**{f"test_{k}": float(v) for k, v in result.items()},
               "num_test": data.spec.num_test}
    (folder / "eval_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


@hydra.main(version_base="1.3", config_path="pkg://kexp.conf", config_name="eval")
def _hydra_main(cfg: DictConfig) -> None:
    metrics = run_guarded(lambda: evaluate(cfg.run_dir, cfg.batch_size, cfg.unsafe_load))
    print(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                   for k, v in metrics.items()))


def main() -> None:
    precheck(sys.argv[1:], config_name="eval")
    _hydra_main()


if __name__ == "__main__":
    main()
