"""`python -m kexp.report [experiment=kexp]`: one file describing an experiment's runs, read
from the MLflow store `python -m kexp` logs to (the page: kexp/tracking/report_page.py).
No TensorFlow.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from kexp.cli import precheck, run_guarded
from kexp.tracking.report_page import FORMATS, default_path, write_report


def report(cfg: DictConfig) -> str:
    """The job of `python -m kexp.report`: write the report, return the line to print."""
    from kexp.errors import KexpError
    from kexp.tracking import runs

    fmt = str(cfg.format)
    if fmt not in FORMATS:
        raise KexpError(f"format: '{fmt}' is not valid; expected one of {', '.join(FORMATS)}")
    if not isinstance(cfg.top, int) or isinstance(cfg.top, bool) or cfg.top < 1:
        raise KexpError(f"top: {cfg.top!r} is not valid; expected a positive integer")
    uri, experiment = runs.store_uri(cfg), str(cfg.logger.experiment)
    frame = runs.load_runs(uri, experiment)
    out = Path(cfg.out) if cfg.out else default_path(cfg.paths.log_dir, experiment, fmt)
    write_report(frame, uri, experiment, out, fmt, cfg.top)
    newest = runs.by_task(frame)[0][1]  # the task of the newest run
    rank = runs.ranking(newest)
    best = runs.best_run(newest, rank)
    found = f"best {best['run_name']} test_{rank.name}={best[rank.metric]:.4f}" \
        if best is not None else f"no finished run with test_{rank.name}"
    return f"kexp.report: wrote {out} ({len(frame)} runs; {found})"


@hydra.main(version_base="1.3", config_path="pkg://kexp.conf", config_name="report")
def _hydra_main(cfg: DictConfig) -> None:
    print(run_guarded(lambda: report(cfg)), flush=True)


def experiment_shorthand(argv: list[str]) -> list[str]:
    """`experiment=NAME` -> `logger.experiment=NAME`, the key runs log their experiment by.

    In the training config `experiment` is the group of presets, so Hydra would take
    `experiment=NAME` for one of those and refuse it."""
    return [f"logger.{a}" if a.startswith("experiment=") else a for a in argv]


def main() -> None:
    sys.argv[1:] = experiment_shorthand(sys.argv[1:])
    precheck(sys.argv[1:], config_name="report")
    _hydra_main()


if __name__ == "__main__":
    main()
