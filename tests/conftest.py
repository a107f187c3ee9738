"""Shared fixtures: composing configs with Hydra's compose API and running kexp as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from omegaconf import DictConfig, OmegaConf

ROOT = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The files with the most end-to-end runs (tests marked slow) first, each file's own
    order kept: `make test` hands whole files to its two processes in this order
    (--dist loadfile), and the longest first leaves neither idle at the end waiting on the
    other's last long file."""
    slow: dict[str, int] = {}
    for item in items:
        slow[str(item.path)] = slow.get(str(item.path), 0) + bool(
            item.get_closest_marker("slow"))
    items.sort(key=lambda item: -slow[str(item.path)])  # stable: a file stays together


def compose_train(overrides: list[str] | None = None) -> DictConfig:
    """The training config exactly as `python -m kexp <overrides>` would compose it."""
    with initialize_config_module("kexp.conf", version_base="1.3"):
        return compose("train", overrides=overrides or [])


def two_trial_search(base: list[str], search: str,
                     objective: tuple[str, str]) -> tuple[dict, list[float], DictConfig]:
    """`kexp.tune` over `base` with `search` and two trials, which must both complete, judged
    by `objective` (name, direction); returns the summary, the trials' scores and best.yaml."""
    from kexp.tuning.search import tune

    with initialize_config_module("kexp.conf", version_base="1.3"):
        cfg = compose("tune", overrides=[*base, f"search={search}", "tuner.max_trials=2"])
    assert (cfg.tuner.objective, cfg.tuner.direction) == objective
    summary = tune(cfg, base)
    assert summary["metrics"]["trials_completed"] == 2, summary
    assert summary["metrics"]["trials_failed"] == 0, summary
    project = Path(cfg.tuner.directory) / cfg.tuner.project_name
    trials = [json.loads(p.read_text()) for p in sorted(project.glob("trial_*/trial.json"))]
    assert [t["status"] for t in trials] == ["COMPLETED", "COMPLETED"]
    scores = [t["score"] for t in trials]
    best = {"min": min, "max": max}[objective[1]](scores)
    assert summary["best_score"] == best
    return summary, scores, OmegaConf.load(Path(summary["output_dir"]) / "best.yaml")


def run_kexp(args: list[str], cwd: Path, module: str = "kexp", timeout: float = 300,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`python -m <module> <args>` in `cwd`, as a user would type it."""
    full_env = {**os.environ, "KEXP_LOG_DIR": str(cwd / "logs")}
    full_env.pop("MLFLOW_TRACKING_URI", None)
    full_env.pop("KEXP_DEBUG", None)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def cfg_job_without_tensorflow(module: str, args: list[str]) -> DictConfig:
    """`python -m <module> --cfg job <args>`'s config, asserting TensorFlow was never imported."""
    code = (f"import sys; sys.argv = ['{module}', '--cfg', 'job', *{args!r}];"
            f"from {module if module != 'kexp' else 'kexp.__main__'} import main; main();"
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'TF imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return OmegaConf.create(done.stdout)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path
