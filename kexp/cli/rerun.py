"""`resume=<run_dir>` and `from_run=<mlflow run id>` on the command line.

- `resume=<run_dir>`: a killed run continued from its own saved config, in its own directory.
- `from_run=<run id>`: a logged run's config run again as a new run, linked to the old one
  (tag `from_run`); overrides apply on top.

Nothing here imports TensorFlow. Both become what Hydra understands: a saved config.yaml as the
primary config (`--config-path <dir> --config-name config`) plus overrides.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from kexp.cli import fail

RESUME = "resume="
FROM_RUN = "from_run="


def expand(argv: Sequence[str]) -> list[str]:
    """`argv` with `resume=<run_dir>` or `from_run=<id>` replaced by what Hydra understands."""
    wanted = [a for a in argv if a.startswith((RESUME, FROM_RUN))]
    if len(wanted) > 1:
        fail(f"{wanted[0].split('=')[0]} and {wanted[1].split('=')[0]}: give one of them, once")
    if any(a.startswith(("--config-path", "--config-name", "--config-dir", "-cp", "-cn"))
           for a in argv) and wanted:
        fail(f"{wanted[0].split('=')[0]}: the run's saved config is the config; drop "
             f"--config-path/--config-name")
    if wanted and wanted[0].startswith(FROM_RUN):
        return from_run(wanted[0][len(FROM_RUN):], [a for a in argv if a != wanted[0]])
    return resume(argv)


def resume(argv: Sequence[str]) -> list[str]:
    """`argv` with `resume=<run_dir>` replaced by the overrides that continue that run.

    Other overrides stay and apply on top of the saved config (e.g. trainer.epochs=30 to train
    longer); group choices (model=vgg) cannot apply to a saved, flattened config."""
    wanted = [a for a in argv if a.startswith(RESUME)]
    if not wanted:
        return list(argv)
    rest = [a for a in argv if not a.startswith(RESUME)]
    folder = Path(wanted[0][len(RESUME):]).expanduser()
    if not folder.is_dir():
        fail(f"resume: '{folder}' is not a directory; pass the directory of the run to "
             f"continue (logs/runs/<date>_<time>_<pid>)")
    if not (folder / "config.yaml").is_file():
        fail(f"resume: '{folder}' holds no config.yaml, so it is not a kexp run directory "
             f"(or the run was killed before it started)")
    if (folder / "metrics.json").is_file():
        fail(f"resume: '{folder}' holds a finished run (metrics.json); nothing to resume")
    folder = folder.resolve()
    return ["--config-path", str(folder), "--config-name", "config",
            f"hydra.run.dir={folder}", *rest]


def from_run(run_id: str, rest: list[str]) -> list[str]:
    """The overrides that run MLflow run `run_id`'s config.yaml artifact again as a new run.

    The store is the one a run with `rest` would log to (logger.tracking_uri, else
    $MLFLOW_TRACKING_URI, else <paths.log_dir>/mlflow.db)."""
    import atexit
    import shutil
    import tempfile

    from omegaconf import OmegaConf

    from kexp import run_dir
    from kexp.cli import compose, config_dir, run_guarded
    from kexp.tracking.runs import store_uri

    if not run_id:
        fail("from_run: give the MLflow run id of the run to repeat (mlflow ui shows it)")
    store = [o for o in rest if o.lstrip("+~").startswith(("logger.", "paths.log_dir"))]
    uri = run_guarded(lambda: store_uri(compose(config_dir(), "train", store)))
    folder = Path(tempfile.mkdtemp(prefix="kexp-from-run-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    saved = _download_config(run_id, uri, folder)
    config = OmegaConf.to_container(OmegaConf.load(saved), resolve=False)
    config.pop("hydra", None)
    run_dir.save_runnable(config, folder / "config.yaml")
    return ["--config-path", str(folder), "--config-name", "config",
            f"++tags.from_run={run_id}", *rest]


def _download_config(run_id: str, uri: str, folder: Path) -> Path:
    """The config.yaml artifact of `run_id` in the store at `uri`, as a local file."""
    import logging

    import mlflow
    from mlflow.exceptions import MlflowException

    from kexp.tracking.store import environment_kept, sqlite_path

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    database = sqlite_path(uri)
    if database is not None and not database.is_file():
        fail(f"from_run: there is no MLflow store at {uri}; set logger.tracking_uri (or "
             f"paths.log_dir) to where run {run_id} was logged")
    try:
        mlflow.MlflowClient(uri).get_run(run_id)
    except MlflowException:
        fail(f"from_run: no run '{run_id}' in the MLflow store {uri} (mlflow ui lists the runs)")
    try:
        with environment_kept():  # the re-run's config must not see the URI given here
            return Path(mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path="config.yaml", dst_path=str(folder),
                tracking_uri=uri))
    except (MlflowException, OSError):
        fail(f"from_run: run '{run_id}' has no config.yaml artifact, so it was not logged by "
             f"kexp (or not by this version); re-run it from its run directory's config.yaml")
