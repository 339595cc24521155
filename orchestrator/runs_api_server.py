"""The reference Codex Cloud Runs API: FastAPI and SQLite, honouring idempotency keys.

Endpoints (``/workspaces/...`` and ``/_faults`` need ``authorization: Bearer <token>``)::

    GET    /health                              liveness, no auth
    POST   /workspaces/{ws}/runs/import         import one run (x-idempotency-key header)
    GET    /workspaces/{ws}/runs                list: ?limit=&offset=&taskId=  -> {items, total}
    GET    /workspaces/{ws}/runs/{id}           one run with its summary and manifest
    GET    /_faults                             the fault plan in force (counters remaining)
    POST   /_faults                             replace the fault plan
    DELETE /_faults                             clear it

Idempotency: the first import of a key is stored with the sha256 of its canonical
JSON body and the answer it got. The same key with the same body gets that same
answer again (header ``x-idempotent-replayed: true``); the same key with another
body gets 409. A unique index on (workspace, key) keeps one row per key.

Fault injection, for tests and demos (:class:`FaultPlan`): fail the next N imports
with 500 or 429 (+ ``Retry-After``), fail or drop a random share of them, delay
them, or commit and then drop the connection before the answer is sent.

Run it with ``orchestrator cloud serve`` or, as a subprocess for tests,
``python -m orchestrator.runs_api_server --port 0 --db runs.sqlite3 --token-env NAME``:
the token is read from the environment variable NAME, never from the command line,
and the line ``Runs API listening on <url>`` is printed once it accepts connections.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import random
import secrets
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Annotated, Any

import uvicorn
from fastapi import APIRouter, Body, Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from starlette.types import Receive, Scope, Send

from schemas import SAFE_ID_PATTERN, utc_now

from .exceptions import InvalidInputError, OrchestratorError
from .redaction import get_redactor, install_log_redaction

LOOPBACK = "127.0.0.1"
DEFAULT_PORT = 8765
DEFAULT_TOKEN_ENV = "ORCHESTRATOR_CLOUD_TOKEN"
READY_PREFIX = "Runs API listening on "
REPLAYED_HEADER = "x-idempotent-replayed"

MODULE_NAME = "orchestrator.runs_api_server"  # also when run as __main__
logger = logging.getLogger(MODULE_NAME)

# -- fault injection -------------------------------------------------------------------


class FaultPlan(BaseModel):
    """Faults the server injects into ``POST .../runs/import`` requests.

    Counters (``fail_next``, ``drop_after_commit``, ``delay_next``) count down as
    requests arrive; rates apply to every request the counters left alone.
    """

    model_config = ConfigDict(extra="forbid")

    fail_next: int = Field(default=0, ge=0, description="Answer the next N with fail_status.")
    fail_status: int = Field(default=500, description="429 or a 5xx.")
    retry_after: int | None = Field(
        default=None, ge=0, description="Retry-After seconds on injected failures."
    )
    drop_after_commit: int = Field(
        default=0, ge=0, description="Store the next N, then drop the connection unanswered."
    )
    fail_rate: float = Field(default=0.0, ge=0, le=1, description="Share failed, at random.")
    drop_rate: float = Field(
        default=0.0, ge=0, le=1, description="Share stored then dropped, at random."
    )
    seed: int | None = Field(default=None, description="Seed of the random faults.")
    delay: float = Field(default=0.0, ge=0, le=60, description="Seconds to wait before handling.")
    delay_next: int | None = Field(
        default=None, ge=0, description="Delay only the next N (None: every request)."
    )

    @model_validator(mode="after")
    def _consistent(self) -> FaultPlan:
        if self.fail_status != 429 and not 500 <= self.fail_status <= 599:
            raise ValueError("fail_status must be 429 or a 5xx status")
        if self.fail_rate + self.drop_rate > 1:
            raise ValueError("fail_rate + drop_rate must not exceed 1")
        return self


@dataclass(frozen=True)
class FaultAction:
    """What to do to one request."""

    delay: float = 0.0
    fail_status: int | None = None
    retry_after: int | None = None
    drop: bool = False


class FaultInjector:
    """Hands out one :class:`FaultAction` per import request. Thread-safe."""

    def __init__(self, plan: FaultPlan | None = None) -> None:
        self._lock = threading.Lock()
        self._plan = FaultPlan()
        self._rng = random.Random()
        self.set(plan or FaultPlan())

    def set(self, plan: FaultPlan) -> None:
        with self._lock:
            self._plan = plan.model_copy()
            self._rng = random.Random(plan.seed)

    def plan(self) -> FaultPlan:
        """The plan in force, with what is left of its counters."""
        with self._lock:
            return self._plan.model_copy()

    def next(self) -> FaultAction:
        with self._lock:
            delay = self._take_delay()
            plan = self._plan
            if plan.fail_next > 0:
                plan.fail_next -= 1
                return FaultAction(delay, plan.fail_status, plan.retry_after)
            if plan.drop_after_commit > 0:
                plan.drop_after_commit -= 1
                return FaultAction(delay, drop=True)
            draw = self._rng.random() if plan.fail_rate or plan.drop_rate else 1.0
            if draw < plan.fail_rate:
                return FaultAction(delay, plan.fail_status, plan.retry_after)
            return FaultAction(delay, drop=draw < plan.fail_rate + plan.drop_rate)

    def _take_delay(self) -> float:
        plan = self._plan
        if plan.delay_next is None:
            return plan.delay
        if plan.delay_next == 0:
            return 0.0
        plan.delay_next -= 1
        return plan.delay


class _DroppedConnection(Response):
    """Starts an answer and ends before its body: the client sees the connection drop."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"application/json"), (b"content-length", b"64")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})


# -- storage ---------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    workspace TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    body_sha256 TEXT NOT NULL,
    task_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    summary TEXT NOT NULL,
    manifest TEXT NOT NULL,
    bucket TEXT,
    response TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS runs_workspace_key ON runs (workspace, idempotency_key);
CREATE INDEX IF NOT EXISTS runs_workspace_created ON runs (workspace, created_at, id);
"""


class ImportSummary(BaseModel):
    """The summary part of an import body; other fields are kept as sent."""

    model_config = ConfigDict(extra="allow")

    task_id: str = Field(alias="taskId", min_length=1, max_length=200)
    run_id: str = Field(alias="runId", min_length=1, max_length=200)
    status: str = Field(min_length=1, max_length=50)
    mode: str = Field(min_length=1, max_length=50)


class ImportRequest(BaseModel):
    """The body of ``POST .../runs/import``."""

    model_config = ConfigDict(extra="forbid")

    summary: ImportSummary
    manifest: dict[str, Any]
    bucket: str | None = Field(default=None, max_length=200)
    idempotency_key: str | None = Field(default=None, alias="idempotencyKey", max_length=200)


@dataclass(frozen=True)
class ImportOutcome:
    status_code: int
    response: dict[str, Any]
    replayed: bool = False


class RunsDatabase:
    """The SQLite store of imported runs; one connection, serialised by a lock."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def import_run(
        self, workspace: str, key: str, request: ImportRequest, body: dict[str, Any]
    ) -> ImportOutcome:
        """Store the run once per key; the same key answers the same, or 409 on another body."""
        body_sha256 = _canonical_sha256(body)
        with self._lock:
            row = self._conn.execute(
                "SELECT body_sha256, response FROM runs"
                " WHERE workspace = ? AND idempotency_key = ?",
                (workspace, key),
            ).fetchone()
            if row is not None:
                return _replay(stored_sha256=row[0], response=row[1], body_sha256=body_sha256)
            return self._insert(workspace, key, request, body_sha256)

    def _insert(
        self, workspace: str, key: str, request: ImportRequest, body_sha256: str
    ) -> ImportOutcome:
        run_id = f"run_{secrets.token_hex(10)}"
        response = {"id": run_id, "idempotencyKey": key, "createdAt": utc_now().isoformat()}
        summary = request.summary
        with self._conn:
            self._conn.execute(
                "INSERT INTO runs (id, workspace, idempotency_key, body_sha256, task_id, run_id,"
                " summary, manifest, bucket, response, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    workspace,
                    key,
                    body_sha256,
                    summary.task_id,
                    summary.run_id,
                    summary.model_dump_json(by_alias=True),
                    json.dumps(request.manifest),
                    request.bucket,
                    json.dumps(response),
                    response["createdAt"],
                ),
            )
        return ImportOutcome(200, response)

    def list_runs(
        self, workspace: str, *, limit: int, offset: int, task_id: str | None = None
    ) -> tuple[list[dict[str, Any]], int]:
        """A page of runs (oldest first) and the total count."""
        where, params = "workspace = ?", [workspace]
        if task_id is not None:
            where, params = where + " AND task_id = ?", [*params, task_id]
        with self._lock:
            total = self._conn.execute(f"SELECT COUNT(*) FROM runs WHERE {where}", params)
            count = int(total.fetchone()[0])
            rows = self._conn.execute(
                "SELECT id, idempotency_key, summary, bucket, created_at FROM runs"
                f" WHERE {where} ORDER BY created_at, id LIMIT ? OFFSET ?",
                [*params, limit, offset],
            ).fetchall()
        return [_item(row) for row in rows], count

    def get_run(self, workspace: str, run_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT id, idempotency_key, summary, bucket, created_at, manifest FROM runs"
                " WHERE workspace = ? AND id = ?",
                (workspace, run_id),
            ).fetchone()
        if row is None:
            return None
        return {**_item(row[:5]), "manifest": json.loads(row[5])}


def _canonical_sha256(body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _replay(*, stored_sha256: str, response: str, body_sha256: str) -> ImportOutcome:
    if stored_sha256 != body_sha256:
        detail = "this idempotency key was already used with a different body"
        return ImportOutcome(409, {"detail": detail})
    return ImportOutcome(200, json.loads(response), replayed=True)


def _item(row: tuple[Any, ...]) -> dict[str, Any]:
    run_id, key, summary, bucket, created_at = row
    return {
        "id": run_id,
        "idempotencyKey": key,
        "summary": json.loads(summary),
        "bucket": bucket,
        "createdAt": created_at,
    }


# -- the application -------------------------------------------------------------------

WorkspaceId = Annotated[str, PathParam(pattern=SAFE_ID_PATTERN, max_length=64)]


def _database(request: Request) -> RunsDatabase:
    database: RunsDatabase = request.app.state.database
    return database


def _faults(request: Request) -> FaultInjector:
    injector: FaultInjector = request.app.state.faults
    return injector


Database = Annotated[RunsDatabase, Depends(_database)]
Faults = Annotated[FaultInjector, Depends(_faults)]
api = APIRouter()


@api.post("/workspaces/{workspace}/runs/import")
def import_run(
    workspace: WorkspaceId,
    body: Annotated[dict[str, Any], Body()],
    database: Database,
    faults: Faults,
    key: Annotated[str | None, Header(alias="x-idempotency-key")] = None,
) -> Response:
    """Import one run, at most once per idempotency key."""
    action = faults.next()
    if action.delay:
        time.sleep(action.delay)  # a sync endpoint runs in a worker thread
    if action.fail_status is not None:
        logger.warning("injected fault: answering HTTP %s", action.fail_status)
        return _injected_failure(action)
    request = _parse_import(body, key)
    assert key is not None
    outcome = database.import_run(workspace, key, request, body)
    if action.drop and outcome.status_code == 200:
        logger.warning("injected fault: dropping the connection after commit")
        return _DroppedConnection()
    headers = {REPLAYED_HEADER: "true"} if outcome.replayed else None
    return JSONResponse(outcome.response, status_code=outcome.status_code, headers=headers)


@api.get("/workspaces/{workspace}/runs")
def list_runs(
    workspace: WorkspaceId,
    database: Database,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
    task_id: Annotated[str | None, Query(alias="taskId")] = None,
) -> dict[str, Any]:
    """A page of the workspace's runs, oldest first, and their total."""
    items, total = database.list_runs(workspace, limit=limit, offset=offset, task_id=task_id)
    return {"items": items, "total": total, "limit": limit, "offset": offset}


@api.get("/workspaces/{workspace}/runs/{run_id}")
def read_run(workspace: WorkspaceId, run_id: str, database: Database) -> dict[str, Any]:
    """One run with its summary and manifest."""
    run = database.get_run(workspace, run_id)
    if run is None:
        raise HTTPException(404, detail=f"no run {run_id!r} in workspace {workspace!r}")
    return run


@api.get("/_faults")
def read_faults(faults: Faults) -> FaultPlan:
    return faults.plan()


@api.post("/_faults")
def set_faults(plan: FaultPlan, faults: Faults) -> FaultPlan:
    faults.set(plan)
    return faults.plan()


@api.delete("/_faults")
def clear_faults(faults: Faults) -> FaultPlan:
    faults.set(FaultPlan())
    return faults.plan()


def health() -> dict[str, str]:
    return {"status": "ok"}


def _injected_failure(action: FaultAction) -> JSONResponse:
    assert action.fail_status is not None
    headers = {"retry-after": str(action.retry_after)} if action.retry_after is not None else None
    detail = f"injected failure ({action.fail_status})"
    return JSONResponse({"detail": detail}, status_code=action.fail_status, headers=headers)


def _parse_import(body: dict[str, Any], key: str | None) -> ImportRequest:
    if not key or len(key) > 200:
        raise HTTPException(400, detail="the x-idempotency-key header is required")
    try:
        request = ImportRequest.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(body)"
        raise HTTPException(422, detail=f"invalid import body: {where}: {first['msg']}") from None
    if request.idempotency_key is not None and request.idempotency_key != key:
        raise HTTPException(400, detail="idempotencyKey in the body differs from the header")
    return request


def _bearer(token: str) -> Callable[[str | None], None]:
    def require_token(authorization: Annotated[str | None, Header()] = None) -> None:
        scheme, _, value = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(value.encode(), token.encode()):
            raise HTTPException(
                401,
                detail="missing or invalid bearer token",
                headers={"www-authenticate": "Bearer"},
            )

    return require_token


def create_app(db_path: Path, token: str, *, faults: FaultPlan | None = None) -> FastAPI:
    """The Runs API application; the database opens when the app starts.

    Raises:
        InvalidInputError: The token is empty.
    """
    if not token:
        raise InvalidInputError("the Runs API server needs a non-empty token")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.database = RunsDatabase(Path(db_path))
        try:
            yield
        finally:
            app.state.database.close()

    app = FastAPI(title="Codex Cloud Runs API (reference)", version="1", lifespan=lifespan)
    app.state.faults = FaultInjector(faults)
    app.add_api_route("/health", health, methods=["GET"])
    app.include_router(api, dependencies=[Depends(_bearer(token))])
    return app


# -- serving ---------------------------------------------------------------------------


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
        MODULE_NAME: {"handlers": ["stderr"], "level": "INFO", "propagate": False},
    },
}


class _Server(uvicorn.Server):
    """A uvicorn server that reports once it accepts connections."""

    def __init__(self, config: uvicorn.Config, *, on_started: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self._on_started()


def serve(
    *,
    port: int,
    db_path: Path,
    token: str,
    host: str = LOOPBACK,
    faults: FaultPlan | None = None,
    access_log: bool = True,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve the Runs API until SIGINT/SIGTERM; ``on_ready(url)`` once it accepts connections.

    ``port`` 0 picks a free port (the URL passed to ``on_ready`` names it).
    """
    get_redactor().register(token)
    install_log_redaction()
    app = create_app(db_path, token, faults=faults)
    sock = _bind(host, port)
    url = f"http://{_url_host(host)}:{sock.getsockname()[1]}"
    config = uvicorn.Config(
        app,
        log_config=_LOG_CONFIG,
        log_level="info" if access_log else "warning",
        access_log=access_log,
        timeout_graceful_shutdown=5,
    )
    server = _Server(config, on_started=lambda: on_ready(url) if on_ready else None)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say so,
    # and without it every answer waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise InvalidInputError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


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


def parse_faults(text: str | None) -> FaultPlan | None:
    """A :class:`FaultPlan` from JSON text (None passes through).

    Raises:
        InvalidInputError: The text is not a valid fault plan.
    """
    if text is None:
        return None
    try:
        return FaultPlan.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(plan)"
        raise InvalidInputError(f"invalid fault plan: {where}: {first['msg']}") from None


# -- running as a subprocess -----------------------------------------------------------


@dataclass
class ServerProcess:
    """A reference server running in a child process; stop it with :meth:`stop`."""

    process: subprocess.Popen[str]
    url: str
    log_path: Path
    _drain: threading.Thread = field(repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, *, timeout: float = 10.0) -> int:
        """Terminate the process (SIGTERM to its pid, SIGKILL after ``timeout``)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        self._drain.join(timeout)
        return self.process.returncode

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@dataclass
class _Ready:
    event: threading.Event = field(default_factory=threading.Event)
    url: str | None = None


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
) -> ServerProcess:
    """Start ``python -m orchestrator.runs_api_server`` and wait until it listens.

    The token reaches the child through its environment; its output goes to ``log_path``.

    Raises:
        OrchestratorError: The server exited or did not listen within ``ready_timeout``.
    """
    command = [sys.executable, "-m", MODULE_NAME, "--host", host, "--port", str(port)]
    command += ["--db", str(db_path), "--token-env", token_env]
    if faults is not None:
        command += ["--faults", faults.model_dump_json()]
    if quiet:
        command.append("--quiet")
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, token_env: token},
    )
    assert process.stdout is not None
    ready = _Ready()
    drain = threading.Thread(
        target=_drain, args=(process.stdout, log_path, ready), name="runs-api-log", daemon=True
    )
    drain.start()
    if ready.event.wait(ready_timeout) and ready.url is not None:
        return ServerProcess(process, ready.url, log_path, drain)
    ServerProcess(process, "", log_path, drain).stop()
    tail = (
        log_path.read_text(encoding="utf-8", errors="replace")[-2000:] if log_path.exists() else ""
    )
    raise OrchestratorError(f"the Runs API server did not start; its output:\n{tail}")


def _drain(stream: IO[str], log_path: Path, ready: _Ready) -> None:
    """Copy the child's output to ``log_path``; note the URL once it is printed."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with stream, log_path.open("a", encoding="utf-8") as log:
        for line in stream:
            log.write(line)
            log.flush()
            if ready.url is None and line.startswith(READY_PREFIX):
                ready.url = line[len(READY_PREFIX) :].strip()
                ready.event.set()
    ready.event.set()


def main(argv: list[str] | None = None) -> int:
    """``python -m orchestrator.runs_api_server``: serve until terminated."""
    parser = argparse.ArgumentParser(
        prog="python -m orchestrator.runs_api_server",
        description="The reference Codex Cloud Runs API (FastAPI + SQLite).",
    )
    parser.add_argument("--host", default=LOOPBACK, help="Address to listen on (loopback).")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port.")
    parser.add_argument("--db", type=Path, required=True, help="SQLite file of imported runs.")
    parser.add_argument("--token-env", default=DEFAULT_TOKEN_ENV, help="Env var with the token.")
    parser.add_argument("--faults", help="Fault plan as JSON, e.g. '{\"fail_next\": 2}'.")
    parser.add_argument("--quiet", action="store_true", help="No access log.")
    args = parser.parse_args(argv)
    try:
        token = token_from_env(args.token_env)
        faults = parse_faults(args.faults)
        serve(
            port=args.port,
            db_path=args.db,
            token=token,
            host=args.host,
            faults=faults,
            access_log=not args.quiet,
            on_ready=lambda url: print(f"{READY_PREFIX}{url}", flush=True),
        )
    except InvalidInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
