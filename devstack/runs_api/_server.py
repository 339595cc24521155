"""Serving the reference Runs API: in the foreground until a stop signal, or as our child.

``orchestrator cloud serve`` and ``python -m devstack.runs_api`` call :func:`serve`;
tests and benchmarks call :func:`spawn_server`, which runs ``python -m
devstack.runs_api`` with the token in the child's environment only and waits for the
line ``Runs API listening on <url>``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator.exceptions import InvalidInputError
from orchestrator.redaction import get_redactor, install_log_redaction

from .._foreground import stop_signals
from .._process import ServerProcess
from .._uvicorn import LOOPBACK, UvicornThread
from .._wire import RUNS_API_READY, RUNS_API_TOKEN_ENV, ready_pattern
from ._app import LOGGER_NAME, create_app
from ._faults import FaultPlan
from ._guard import DEFAULT_MAX_BODY_BYTES

DEFAULT_PORT = 8765
DEFAULT_TOKEN_ENV = RUNS_API_TOKEN_ENV
READY_PREFIX = RUNS_API_READY
READY_PATTERN = ready_pattern(READY_PREFIX)

_LOG_CONFIG: dict[str, Any] = {
    # Plain formatters: uvicorn's own read ``record.args``, which the redacting
    # log-record factory has already folded into the (redacted) message.
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(levelname)s: %(message)s"}},
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "stream": "ext://sys.stderr",
        }
    },
    "loggers": {
        "uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "uvicorn.access": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        LOGGER_NAME: {"handlers": ["stderr"], "level": "INFO", "propagate": False},
    },
}


def serve(
    *,
    port: int,
    db_path: Path,
    token: str,
    host: str = LOOPBACK,
    faults: FaultPlan | None = None,
    access_log: bool = True,
    on_ready: Callable[[str], None] | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> None:
    """Serve the Runs API until SIGINT/SIGTERM; ``on_ready(url)`` once it accepts connections.

    ``port`` 0 picks a free port (the URL passed to ``on_ready`` names it); a request
    body over ``max_body_bytes`` is answered 413.

    Raises:
        InvalidInputError: the token is empty, the body limit is below 1, or the
            address cannot be listened on.
    """
    get_redactor().register(token)
    install_log_redaction()
    server = UvicornThread(
        create_app(db_path, token, faults=faults, max_body_bytes=max_body_bytes),
        name="runs-api",
        host=host,
        port=port,
        lifespan="on",
        log_config=_LOG_CONFIG,
        log_level="info" if access_log else "warning",
        access_log=access_log,
    )
    with stop_signals() as stop, server:
        if on_ready is not None:
            on_ready(server.url)
        stop.wait(alive=lambda: server.alive)


def token_from_env(name: str) -> str:
    """The server token from environment variable ``name``.

    Raises:
        InvalidInputError: The variable is unset or empty (the message says how to set one).
    """
    token = os.environ.get(name, "")
    if not token:
        raise InvalidInputError(
            f"set the Runs API token in the environment variable {name}, e.g. "
            f"export {name}=\"$(python -c 'import secrets; print(secrets.token_urlsafe(32))')\""
        )
    return token


def spawn_server(
    *,
    db_path: Path,
    token: str,
    log_path: Path,
    host: str = LOOPBACK,
    port: int = 0,
    faults: FaultPlan | None = None,
    token_env: str = DEFAULT_TOKEN_ENV,
    quiet: bool = True,
    ready_timeout: float = 30.0,
    max_body_bytes: int | None = None,
) -> ServerProcess:
    """Start ``python -m devstack.runs_api`` as our child and wait until it listens.

    The token reaches the child through its environment; its output goes to ``log_path``.
    ``max_body_bytes`` None keeps the server's default body limit.

    Raises:
        ProcessError: The server exited or did not listen within ``ready_timeout``.
    """
    command = [sys.executable, "-m", "devstack.runs_api", "--host", host, "--port", str(port)]
    command += ["--db", str(db_path), "--token-env", token_env]
    if faults is not None:
        command += ["--faults", faults.model_dump_json()]
    if max_body_bytes is not None:
        command += ["--max-body-bytes", str(max_body_bytes)]
    if quiet:
        command.append("--quiet")
    return ServerProcess.start(
        "runs-api",
        command,
        ready=READY_PATTERN,
        log=log_path,
        env={token_env: token},
        timeout=ready_timeout,
    )
