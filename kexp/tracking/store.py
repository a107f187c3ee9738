"""Talking to an MLflow store safely: a bounded reachability probe, bounded HTTP calls, and a
file lock around a SQLite store's first contact."""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

from kexp.config import check
from kexp.errors import KexpError

PROBE_TIMEOUT_S = 5  # per attempt; a closed port answers at once, a hung server costs 2x this
PROBE_RETRIES = 1
# Defaults for every MLflow HTTP call of a run (a user's own MLFLOW_HTTP_* settings win):
# MLflow's are 7 retries with exponential backoff and a 120 s timeout, minutes of a run stuck
# in one epoch-end call against a dead server. With these a dead server costs ~3 s, a hung
# one ~1 min, once: the tracker then goes offline.
CALL_DEFAULTS = {"MLFLOW_HTTP_REQUEST_TIMEOUT": "20", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
                 "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}


def check_scheme(uri: str) -> str:
    """`uri` when MLflow can log to it (sqlite, file, http, https, databricks or a plain path),
    else one line naming logger.tracking_uri and those schemes.

    `config.validate` applies the same rule to logger.tracking_uri before TensorFlow loads;
    this is for a URI that did not come through it (a run's saved config, kexp from Python),
    which MLflow would otherwise refuse with a traceback from inside the run."""
    return check("logger.tracking_uri", uri)


def is_http(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


@contextlib.contextmanager
def environment_kept() -> Iterator[None]:
    """Leave $MLFLOW_TRACKING_URI as it was: MLflow exports any URI it is given there, and
    kexp's configs read it (logger.tracking_uri: ${oc.env:MLFLOW_TRACKING_URI,null}), so a run's
    config.yaml, the next run of a sweep or a from_run re-run would see a URI nobody set."""
    before = os.environ.get("MLFLOW_TRACKING_URI")
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = before


def sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///<path>` URI (None for any other store or in-memory)."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri.removeprefix("sqlite:///").split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def bound_http_calls() -> None:
    """Make MLflow's HTTP calls in this process give up in seconds (see CALL_DEFAULTS)."""
    for name, value in CALL_DEFAULTS.items():
        os.environ.setdefault(name, value)


START_SERVER = "start the server, or use logger=none / unset it for the local SQLite store"


def http_probe(uri: str, experiment: str, advice: str = START_SERVER) -> None:
    """One bounded MLflow API call to `uri`; a KexpError ending in `advice` when it fails.

    Any answer of the MLflow API counts as reachable, including "no such experiment"."""
    from mlflow.exceptions import MlflowException
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request

    try:
        with quiet_retries():
            answer = http_request(
                get_default_host_creds(uri), "/api/2.0/mlflow/experiments/get-by-name", "GET",
                max_retries=PROBE_RETRIES, backoff_factor=0, backoff_jitter=0,
                timeout=PROBE_TIMEOUT_S, raise_on_status=False,
                params={"experiment_name": experiment})
    except MlflowException as exc:
        raise KexpError(_unreachable(uri, failure_reason(exc), advice)) from None
    code = answer.status_code
    if code == 200 or (code == 404 and "RESOURCE_DOES_NOT_EXIST" in answer.text):
        return
    if code in (401, 403):
        raise KexpError(f"logger.tracking_uri: {uri} refused kexp (HTTP {code}); set "
                        "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, or "
                        "MLFLOW_TRACKING_TOKEN, or use logger=none")
    if code >= 500:
        raise KexpError(_unreachable(uri, f"HTTP {code}", advice))
    raise KexpError(f"logger.tracking_uri: {uri} answered HTTP {code} to an MLflow API call; "
                    "is it an MLflow tracking server (mlflow server --host ... --port ...)?")


def _unreachable(uri: str, reason: str, advice: str) -> str:
    return f"logger.tracking_uri: cannot reach {uri} ({reason}); {advice}"


def failure_reason(exc: BaseException) -> str:
    """'connection refused', 'no answer in time', ... out of requests' nested messages;
    else the exception's first line."""
    text = str(exc).strip()
    found = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if found:
        return found.group(1).strip().rstrip(".").lower()
    if "timed out" in text.lower() or "timeout exception" in text.lower():
        return "no answer in time"
    first = text.splitlines()[0][:200] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


@contextlib.contextmanager
def quiet_retries() -> Iterator[None]:
    """Keep urllib3's warning per HTTP retry off the console while inside: a failed call ends
    in one line of kexp's that says what happened."""
    quiet = logging.getLogger("urllib3.connectionpool")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        yield
    finally:
        quiet.setLevel(level)


@contextlib.contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """Hold `<db>.lock` exclusively (flock) while inside, for a `sqlite:///` store only.

    Processes on one machine sharing a SQLite file queue here; elsewhere it does nothing
    (a server serializes its own store; Windows has no flock)."""
    path = sqlite_path(uri)
    try:
        import fcntl
    except ImportError:
        fcntl = None
    if path is None or fcntl is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
