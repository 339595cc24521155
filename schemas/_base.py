"""Shared building blocks of every document: strict models, safe ids, hashes, UTC time."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

SAFE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_SAFE_ID = re.compile(SAFE_ID_PATTERN)


def check_safe_id(value: str) -> str:
    """Return ``value`` if it can name one directory level safely, else raise ``ValueError``.

    Allowed: 1-64 characters of letters, digits, ``.``, ``_`` and ``-``, starting with a
    letter or digit, and never containing ``..``; so no separators, no parent
    references and no absolute paths.
    """
    if not _SAFE_ID.fullmatch(value) or ".." in value:
        raise ValueError(
            f"{value!r} is not a safe id: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit, without '..' or path separators"
        )
    return value


def check_http_url(value: str, *, what: str) -> str:
    """Return ``value`` (without a trailing ``/``) if it is an http(s) URL with a host and
    no credentials, query or fragment in it, else raise ``ValueError`` naming ``what``."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{what} must be an http:// or https:// URL with a host")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError(f"{what} must not carry credentials, a query or a fragment")
    return value.rstrip("/")


SafeId = Annotated[
    str,
    Field(pattern=SAFE_ID_PATTERN, max_length=64, description="A safe id: one path level."),
    AfterValidator(check_safe_id),
]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="Lowercase hex sha256.")]
DeploymentName = Annotated[
    str,
    Field(
        pattern=r"^[^/\s][^/]*/[^/\s][^/]*$",
        max_length=400,
        description="A Prefect deployment as <flow name>/<deployment name>, the way "
        "'prefect deployment run' names it, e.g. 'nightly/nightly'.",
    ),
]
UtcDatetime = AwareDatetime


Clock = Callable[[], datetime]
"""What tells the time: returns the current time, timezone-aware."""


def system_clock() -> datetime:
    return datetime.now(UTC)


_clock: Clock = system_clock


def utc_now() -> datetime:
    """The current time, timezone-aware in UTC, from the process's clock (the system's,
    unless :func:`set_clock` replaced it)."""
    return _clock().astimezone(UTC)


def set_clock(clock: Clock) -> Clock:
    """Replace the process's clock (every time a run records reads it: a run's start,
    and so the UTC day its budget counts in); returns the previous one (tests pin a run
    to a day with it, and restore it)."""
    global _clock
    previous, _clock = _clock, clock
    return previous


class StrictModel(BaseModel):
    """A document we define: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
