"""The reference Codex Cloud Runs API: FastAPI and SQLite, honouring idempotency keys.

Endpoints (``/workspaces/...`` and ``/_faults`` need ``authorization: Bearer <token>``)::

    GET    /health                              liveness, no auth
    POST   /workspaces/{ws}/runs/import         import one run (x-idempotency-key header)
    GET    /workspaces/{ws}/runs                list: ?limit=&offset=&taskId=  -> {items, total}
    GET    /workspaces/{ws}/runs/{id}           one run with its summary and manifest
    GET    /_faults                             the fault plan in force (counters remaining)
    POST   /_faults                             replace the fault plan
    DELETE /_faults                             clear it

Before any route runs (:class:`RequestGuard`): the bearer token is checked from the
headers alone, so an unauthorised body is never read (401); an authorised body over the
limit (``--max-body-bytes``, default 4 MiB) is answered 413 and stored nowhere. Every
error answer has one shape, ``{"error": {"code": ..., "message": ...}}``; ``NaN`` and
``Infinity`` are refused (422), not stored.

Idempotency (:class:`RunsDatabase`): the same key with the same body gets the same
answer again (header ``x-idempotent-replayed: true``); the same key with another body
gets 409.

Fault injection, for tests and demos (:class:`FaultPlan`): fail the next N imports
with 500 or 429 (+ ``Retry-After``), fail or drop a random share of them, delay
them, or commit and then drop the connection before the answer is sent.

Run it with ``orchestrator cloud serve``, ``python -m devstack.runs_api --port 0 --db
runs.sqlite3 --token-env NAME`` (the token is read from the environment variable NAME,
never from the command line), or as our child with :func:`spawn_server`.
"""

from ._app import REPLAYED_HEADER, create_app
from ._database import ImportOutcome, ImportRequest, ImportSummary, RunsDatabase
from ._errors import error_body
from ._faults import FaultAction, FaultInjector, FaultPlan, parse_faults
from ._guard import DEFAULT_MAX_BODY_BYTES, RequestGuard
from ._server import (
    DEFAULT_PORT,
    DEFAULT_TOKEN_ENV,
    READY_PATTERN,
    READY_PREFIX,
    serve,
    spawn_server,
    token_from_env,
)

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_PORT",
    "DEFAULT_TOKEN_ENV",
    "READY_PATTERN",
    "READY_PREFIX",
    "REPLAYED_HEADER",
    "FaultAction",
    "FaultInjector",
    "FaultPlan",
    "ImportOutcome",
    "ImportRequest",
    "ImportSummary",
    "RequestGuard",
    "RunsDatabase",
    "create_app",
    "error_body",
    "parse_faults",
    "serve",
    "spawn_server",
    "token_from_env",
]
