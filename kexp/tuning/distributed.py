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

from kexp.errors import KexpError

ROLES = ("none", "chief", "worker")
_ENV = ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT")


def parse_address(address: str) -> tuple[str, int]:
    """`host:port` (`[v6]:port` for IPv6) -> (host, port), or a one-line error."""
    host, sep, port = str(address).rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise KexpError(f"tuner.distributed.address: '{address}' is not host:port, "
                        "e.g. 127.0.0.1:8000")
    return host.strip("[]"), int(port)


def is_address(address: str) -> bool:
    try:
        parse_address(address)
    except KexpError:
        return False
    return True


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
