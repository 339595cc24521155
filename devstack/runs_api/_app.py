"""The reference Runs API application: routes, bearer-token auth, fault injection."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from orchestrator.exceptions import InvalidInputError
from schemas import SAFE_ID_PATTERN

from ._database import ImportRequest, RunsDatabase
from ._faults import DroppedConnection, FaultAction, FaultInjector, FaultPlan

REPLAYED_HEADER = "x-idempotent-replayed"
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
        return DroppedConnection()
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
