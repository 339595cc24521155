"""The reference Runs API application: routes, the request guard, fault injection."""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from orchestrator.exceptions import InvalidInputError
from schemas import SAFE_ID_PATTERN

from ._database import ImportRequest, RunsDatabase
from ._errors import error_response, first_error, install_error_handlers
from ._faults import DroppedConnection, FaultAction, FaultInjector, FaultPlan
from ._guard import DEFAULT_MAX_BODY_BYTES, RequestGuard

REPLAYED_HEADER = "x-idempotent-replayed"
IDEMPOTENCY_HEADER = "x-idempotency-key"
MAX_KEY_LENGTH = 200
LOGGER_NAME = "devstack.runs_api"
logger = logging.getLogger(LOGGER_NAME)

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
async def import_run(
    workspace: WorkspaceId,
    request: Request,
    database: Database,
    faults: Faults,
    key: Annotated[str | None, Header(alias=IDEMPOTENCY_HEADER)] = None,
) -> Response:
    """Import one run, at most once per idempotency key."""
    action = faults.next()
    if action.delay:
        await asyncio.sleep(action.delay)
    if action.fail_status is not None:
        logger.warning("injected fault: answering HTTP %s", action.fail_status)
        return _injected_failure(action)
    checked_key = _checked_key(key)
    body = _json_object(await request.body())
    parsed = _parse_import(body, checked_key)
    outcome = await run_in_threadpool(database.import_run, workspace, checked_key, parsed, body)
    if action.drop and outcome.status_code == 200:
        logger.warning("injected fault: dropping the connection after commit")
        return DroppedConnection()
    if outcome.status_code != 200:
        return error_response(outcome.status_code, outcome.response["message"])
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
    message = f"injected failure ({action.fail_status})"
    return error_response(action.fail_status, message, headers=headers)


def _checked_key(key: str | None) -> str:
    if not key:
        raise HTTPException(400, detail=f"the {IDEMPOTENCY_HEADER} header is required")
    if len(key) > MAX_KEY_LENGTH:
        message = f"the {IDEMPOTENCY_HEADER} header must be at most {MAX_KEY_LENGTH} characters"
        raise HTTPException(400, detail=message)
    return key


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses as inf
        raise ValueError(f"{text} is out of the range of a finite number")
    return value


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number (JSON has no NaN or Infinity)")


def _json_object(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object; ``NaN``, ``Infinity`` and overflowing numbers refused.

    Python's ``json`` takes ``NaN`` and ``Infinity`` by default; stored, they would come
    back as ``null`` or as invalid JSON, so they are refused here instead.
    """
    try:
        data = json.loads(raw, parse_constant=_no_constant, parse_float=_finite)
    except ValueError as exc:  # JSONDecodeError and our own refusals
        raise HTTPException(422, detail=f"invalid import body: {exc}") from None
    if not isinstance(data, dict):
        raise HTTPException(422, detail="invalid import body: (body): must be a JSON object")
    return data


def _parse_import(body: dict[str, Any], key: str) -> ImportRequest:
    try:
        request = ImportRequest.model_validate(body)
    except ValidationError as exc:
        raise HTTPException(422, detail=first_error(exc.errors(), what="import body")) from None
    if request.idempotency_key is not None and request.idempotency_key != key:
        raise HTTPException(400, detail="idempotencyKey in the body differs from the header")
    return request


def create_app(
    db_path: Path,
    token: str,
    *,
    faults: FaultPlan | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> FastAPI:
    """The Runs API application; the database opens when the app starts.

    Every path but ``/health`` goes through :class:`RequestGuard` (token, then body
    limit) before any route or body parser runs.

    Raises:
        InvalidInputError: The token is empty, or ``max_body_bytes`` is below 1.
    """
    if not token:
        raise InvalidInputError("the Runs API server needs a non-empty token")
    if max_body_bytes < 1:
        raise InvalidInputError(f"the body limit must be at least 1 byte, not {max_body_bytes}")

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
    app.include_router(api)
    install_error_handlers(app)
    app.add_middleware(RequestGuard, token=token, max_body_bytes=max_body_bytes)
    return app
