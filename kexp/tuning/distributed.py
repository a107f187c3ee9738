"""Distributed search: kexp's `tuner.distributed` config as keras-tuner's chief/worker setup.

keras-tuner reads its role from the environment (KERASTUNER_TUNER_ID, KERASTUNER_ORACLE_IP,
KERASTUNER_ORACLE_PORT) when a tuner is made and when it searches: a tuner whose id contains
"chief" serves its oracle over gRPC and blocks until the search is over; any other id makes a
worker whose oracle is a client of the chief's.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager

from omegaconf import DictConfig

# the rules of tuner.distributed.* live with every other config rule, in kexp.config
from kexp.config import ROLES, is_address, parse_address
from kexp.errors import KexpError

__all__ = ["ROLES", "environment", "is_address", "parse_address", "tuner_id"]

_ENV = ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT")


def tuner_id(dist: DictConfig) -> str | None:
    """keras-tuner's id for this process: 'chief', the worker's id, or None (not distributed)."""
    role = dist.role
    if role not in ROLES:
        raise KexpError(f"tuner.distributed.role: '{role}' is not one of {', '.join(ROLES)}")
    if role == "none":
        return None
    parse_address(dist.address)
    if role == "chief":
        return "chief"
    worker = str(dist.worker_id or f"worker-{socket.gethostname()}-{os.getpid()}")
    if "chief" in worker:  # keras-tuner would take this worker for the chief
        raise KexpError(f"tuner.distributed.worker_id: '{worker}' must not contain 'chief'")
    return worker


@contextmanager
def environment(dist: DictConfig) -> Iterator[str]:
    """keras-tuner's environment for `dist` while the search runs; yields the role.

    With role none any KERASTUNER_* variables of the shell are hidden, so kexp's config alone
    says whether a search is distributed; the environment is restored afterwards."""
    wanted = tuner_id(dist)
    saved = {name: os.environ.pop(name) for name in _ENV if name in os.environ}
    if wanted is not None:
        host, port = parse_address(dist.address)
        os.environ.update(KERASTUNER_TUNER_ID=wanted, KERASTUNER_ORACLE_IP=host,
                          KERASTUNER_ORACLE_PORT=str(port))
    try:
        yield dist.role
    finally:
        for name in _ENV:
            os.environ.pop(name, None)
        os.environ.update(saved)
