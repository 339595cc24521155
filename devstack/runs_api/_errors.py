"""The one error shape of the reference Runs API: ``{"error": {"code": ..., "message": ...}}``.

Every answer that is not a success has it: our own refusals, FastAPI's validation errors
(converted, with the first error's field and reason), Starlette's 404/405, the 401 and 413
the request guard gives before a route runs, and injected faults. ``code`` is a stable
word derived from the status; ``message`` is one plain sentence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

ERROR_CODES: Mapping[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    422: "invalid_body",
    429: "too_many_requests",
}


def error_code(status: int) -> str:
    """The ``code`` of an error answer with HTTP ``status``."""
    return ERROR_CODES.get(status, "server_error" if status >= 500 else "client_error")


def error_body(status: int, message: str) -> dict[str, Any]:
    """The JSON body of an error answer."""
    return {"error": {"code": error_code(status), "message": message}}


def error_response(
    status: int, message: str, *, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """An error answer in the one shape."""
    return JSONResponse(error_body(status, message), status_code=status, headers=headers)


def first_error(errors: Sequence[Any], *, what: str) -> str:
    """``invalid <what>: <field>: <reason>`` for the first of pydantic's or FastAPI's errors."""
    first = errors[0] if errors else {}
    where = ".".join(str(part) for part in first.get("loc", ())) or "(body)"
    return f"invalid {what}: {where}: {first.get('msg', 'not valid')}"


def install_error_handlers(app: FastAPI) -> None:
    """Answer every HTTP and validation error ``app`` raises in the one shape."""

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        return error_response(exc.status_code, str(exc.detail), headers=exc.headers)

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(422, first_error(exc.errors(), what="request"))

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
