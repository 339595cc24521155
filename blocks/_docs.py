"""What the blocks share: where their documentation lives, how they word invalid fields."""

from __future__ import annotations

from pydantic import ConfigDict, ValidationError

DOCS_URL = "https://codex-orchestrator.dev/docs/credentials"
HIDE_INPUT = ConfigDict(hide_input_in_errors=True)
"""Validation errors must not echo field values (a role_id, a URL with credentials)."""


def describe_errors(exc: ValidationError) -> str:
    """Each error as ``field: message``; never the input value (it may be a secret)."""
    parts = []
    for error in exc.errors():
        location = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        parts.append(f"{location}: {message}" if location else message)
    return "; ".join(parts)
