"""What it takes to re-run a run: the stack's versions and exactly which data were read.

Every run writes `provenance.json` to its directory and the same facts as MLflow tags
(`versions.<package>`, `data.fingerprint`, ...); the resolved config is config.yaml and the
run's params, and the commit is the `git_commit` tag. `python -m kexp from_run=<run id>` re-runs
a run from them.
"""

from __future__ import annotations

import json
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import kexp

PROVENANCE_FILE = "provenance.json"
# the distributions a run's numbers depend on; TensorFlow ships under several names
PACKAGES = {"tensorflow": ("tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tf-nightly"),
            "keras": ("keras",), "keras-tuner": ("keras-tuner",), "mlflow": ("mlflow",),
            "tensorflow-datasets": ("tensorflow-datasets",), "numpy": ("numpy",),
            "hydra-core": ("hydra-core",)}


def versions() -> dict[str, str]:
    """Python, kexp and each of PACKAGES: the installed version, or 'not installed'."""
    found = {"python": platform.python_version(), "kexp": kexp.__version__}
    for package, distributions in PACKAGES.items():
        found[package] = "not installed"
        for distribution in distributions:
            try:
                found[package] = metadata.version(distribution)
                break
            except metadata.PackageNotFoundError:
                continue
    return found


def record(spec: Any, git_commit: str | None) -> dict[str, Any]:
    """provenance.json's content for a run on data described by `spec` (a DataSpec)."""
    return {"versions": versions(), "git_commit": git_commit, "platform": platform.platform(),
            "data": {"name": spec.name, "version": spec.version,
                     "fingerprint": spec.fingerprint,
                     "examples": {"train": spec.num_train, "val": spec.num_val,
                                  "test": spec.num_test}}}


def tags(facts: dict[str, Any]) -> dict[str, str]:
    """The record as flat MLflow tags: versions.tensorflow, data.fingerprint, ..."""
    flat = {f"versions.{k}": v for k, v in facts["versions"].items()}
    data = facts["data"]
    flat.update({"data.fingerprint": data["fingerprint"], "data.version": data["version"],
                 "data.examples": " ".join(f"{k}={v}" for k, v in data["examples"].items())})
    return {k: str(v) for k, v in flat.items() if v is not None}


def write(facts: dict[str, Any], run_dir: Path) -> Path:
    path = Path(run_dir) / PROVENANCE_FILE
    path.write_text(json.dumps(facts, indent=2, sort_keys=True) + "\n")
    return path
