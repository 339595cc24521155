"""The Codex Cloud Runs API client: mirror one run's manifest, at most once per key.

Wire format (DESIGN.md, "Runs API wire format")::

    POST {base}/workspaces/{workspace_id}/runs/import
    authorization: Bearer <token>
    x-idempotency-key: sha256("<task_id>:<run_id>")
    {"summary": {...}, "manifest": {...}, "idempotencyKey": "<key>"}

A 2xx answer carries ``{"id": ...}`` (or ``{"runId": ...}``); an error answer's message
is read from ``{"error": {"code": ..., "message": ...}}`` (or a plain ``{"detail": ...}``)
into the :class:`SyncError`. The client makes at
most ``max_attempts`` attempts with exponential backoff and jitter; it retries 429
(never sooner than its ``Retry-After``), 5xx, timeouts and connection errors, and
never another 4xx. Every attempt is one ``sync.attempt`` audit line; the token is
in no line, message or error.

The body is a pure function of the run's content: the manifest's ``sync`` record and
its ``updated_at`` are left out, since mirroring the sync state changes both. So a
re-send after a lost answer is byte-identical and the server answers it from its
idempotency store instead of refusing it as a conflicting body.

Where the API is and its token come from configuration: :mod:`orchestrator.cloud_settings`.
"""

from __future__ import annotations

import email.utils
import functools
import hashlib
import json
import random
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx
from pydantic.alias_generators import to_camel

from schemas import RunManifest, TokenUsage

from .audit import AuditLog
from .exceptions import InvalidInputError, SyncError
from .redaction import Redactor, get_redactor
from .runstore import safe_id

IDEMPOTENCY_HEADER = "x-idempotency-key"
USER_AGENT = "codex-orchestrator/0.1 (runs-api-client)"
MIRROR_EXCLUDED_FIELDS = frozenset({"sync", "updated_at"})
"""Manifest fields left out of the mirrored copy: they change when the sync state is mirrored."""
_ERROR_EXCERPT = 200


def idempotency_key(task_id: str, run_id: str) -> str:
    """Lowercase hex sha256 of ``"<task_id>:<run_id>"`` (the colon keeps ``a:bc`` from ``ab:c``)."""
    return hashlib.sha256(f"{task_id}:{run_id}".encode()).hexdigest()


def build_import_body(manifest: RunManifest, *, bucket: str | None = None) -> dict[str, Any]:
    """The JSON body of ``POST .../runs/import`` for ``manifest``."""
    data = manifest.model_dump(mode="json")
    body: dict[str, Any] = {
        "summary": _summary(manifest, data),
        "manifest": {k: v for k, v in data.items() if k not in MIRROR_EXCLUDED_FIELDS},
        "idempotencyKey": idempotency_key(manifest.task_id, manifest.run_id),
    }
    if bucket is not None:
        body["bucket"] = bucket
    return body


def total_tokens(manifest: RunManifest) -> TokenUsage:
    """Token usage summed over every agent step of the run (the manifest's own total)."""
    return manifest.usage.tokens


def _summary(manifest: RunManifest, data: dict[str, Any]) -> dict[str, Any]:
    tokens = total_tokens(manifest).model_dump()
    return {
        "taskId": manifest.task_id,
        "runId": manifest.run_id,
        "env": manifest.env,
        "title": manifest.task.spec.title,
        "status": manifest.status.value,
        "statusReason": manifest.status_reason,
        "mode": manifest.mode.mode.value,
        "modeReason": manifest.mode.reason,
        "approvals": [
            {
                "id": a["id"],
                "gate": a["gate"],
                "decision": a["decision"],
                "approver": a["approver"],
                "channel": a["channel"],
                "decidedAt": a["decided_at"],
            }
            for a in data["approvals"]
        ],
        "artifacts": [
            {"name": a["name"], "sha256": a["sha256"], "size": a["size"]} for a in data["artifacts"]
        ],
        "tokens": {to_camel(name): value for name, value in tokens.items()},
        "createdAt": data["created_at"],
        "finishedAt": data["finished_at"],
        "timestamp": data["finished_at"] or data["created_at"],
    }


# -- retry policy ----------------------------------------------------------------------


class SleepFn(Protocol):
    """Waits ``seconds``; injected so tests need not wait."""

    def __call__(self, seconds: float, /) -> None: ...


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: ``base * factor**(n-1)``, capped, minus up to ``jitter``.

    ``jitter`` is the fraction of the delay that may be taken off at random, so
    clients that failed together do not retry together.
    """

    base: float = 0.5
    factor: float = 2.0
    max_delay: float = 30.0
    jitter: float = 0.5

    def delay(self, attempt: int, *, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        raw = min(self.max_delay, self.base * self.factor ** (attempt - 1))
        return raw * (1.0 - self.jitter * rand())


@dataclass(frozen=True)
class Attempt:
    """The outcome of one HTTP attempt."""

    number: int
    status_code: int | None
    elapsed_ms: int
    cloud_run_id: str | None = None
    error: SyncError | None = None
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class AttemptHook(Protocol):
    """Called after every attempt (e.g. to count it in the sync ledger)."""

    def __call__(self, attempt: Attempt, /) -> None: ...


@dataclass(frozen=True)
class ImportResult:
    """A run the Runs API holds: its remote id and the attempts it took."""

    cloud_run_id: str
    attempts: int
    key: str


# -- the client ------------------------------------------------------------------------


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """httpx's default certificate checks, built once per process (~20 ms each time)."""
    return httpx.create_ssl_context()


class RunsApiClient:
    """Imports run manifests into one workspace of a Runs API. Thread-safe.

    Args:
        base_url: The API root, e.g. ``https://cloud.example/api``.
        workspace_id: The workspace runs are imported into.
        token: The bearer token; registered with the redactor, never written anywhere.
        transport: An httpx transport (e.g. ``httpx.MockTransport``); the default
            HTTP transport is built only when none is given.
        timeout: Seconds for each of connect, read and write of one attempt.
        max_attempts: Attempts per import, at least 1.
        backoff: Delays between attempts.
        max_retry_after: A ``Retry-After`` longer than this ends the import now
            (retryable), instead of blocking the caller.
        sleep: How to wait between attempts.
        audit: Where the ``sync.attempt`` lines go; none when not given.
        redactor: Redacts error excerpts; the process-wide one when not given.
    """

    def __init__(
        self,
        base_url: str,
        workspace_id: str,
        token: str,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 10.0,
        max_attempts: int = 3,
        backoff: Backoff | None = None,
        max_retry_after: float = 60.0,
        sleep: SleepFn = time.sleep,
        audit: AuditLog | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        if max_attempts < 1:
            raise InvalidInputError(f"max_attempts must be at least 1, not {max_attempts}")
        if not token:
            raise InvalidInputError("the Runs API token is empty")
        self.workspace_id = safe_id(workspace_id, what="workspace id")
        self.max_attempts = max_attempts
        self.backoff = backoff or Backoff()
        self.max_retry_after = max_retry_after
        self._sleep = sleep
        self._audit = audit
        self._redactor = redactor or get_redactor()
        self._redactor.register(token)
        self._http = httpx.Client(
            base_url=_checked_base_url(base_url),
            transport=transport,
            timeout=timeout,
            headers={"authorization": f"Bearer {token}", "user-agent": USER_AGENT},
            verify=_tls_context(),
        )

    def __enter__(self) -> RunsApiClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    @property
    def import_path(self) -> str:
        return f"/workspaces/{self.workspace_id}/runs/import"

    def import_run(
        self, manifest: RunManifest, *, on_attempt: AttemptHook | None = None
    ) -> ImportResult:
        """Import ``manifest``, retrying what may succeed later.

        Args:
            manifest: The run to mirror (its body leaves out ``sync`` and ``updated_at``).
            on_attempt: Called after every attempt, before any wait.

        Raises:
            SyncError: The last attempt failed; ``status_code`` is the HTTP status
                (None when no answer came) and ``retryable`` says whether a later
                try may succeed.
        """
        key = idempotency_key(manifest.task_id, manifest.run_id)
        content = _encode(self._redactor.redact_data(build_import_body(manifest)))
        number = 0
        while True:
            number += 1
            attempt = self._attempt(number, content, key)
            delay = self._retry_delay(attempt)
            self._audit_attempt(manifest, attempt, key=key, delay=delay)
            if on_attempt is not None:
                on_attempt(attempt)
            if attempt.cloud_run_id is not None:
                return ImportResult(cloud_run_id=attempt.cloud_run_id, attempts=number, key=key)
            if delay is None:
                assert attempt.error is not None
                raise attempt.error
            self._sleep(delay)

    # -- one attempt -------------------------------------------------------------------

    def _attempt(self, number: int, content: bytes, key: str) -> Attempt:
        started = time.monotonic()
        response: httpx.Response | None = None
        cloud_run_id: str | None = None
        try:
            response = self._post(content, key)
        except SyncError as exc:
            error: SyncError | None = exc
        else:
            cloud_run_id, error = self._interpret(response)
        return Attempt(
            number,
            response.status_code if response is not None else None,
            _ms_since(started),
            cloud_run_id=cloud_run_id,
            error=self._numbered(error, number) if error is not None else None,
            retry_after=_retry_after(response) if response is not None else None,
        )

    def _post(self, content: bytes, key: str) -> httpx.Response:
        """One POST; httpx's errors are translated here, once."""
        headers = {"content-type": "application/json", IDEMPOTENCY_HEADER: key}
        try:
            return self._http.post(self.import_path, content=content, headers=headers)
        except httpx.TimeoutException as exc:
            raise SyncError(f"Runs API timed out ({type(exc).__name__})", retryable=True) from None
        except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            reason = self._redactor.redact(str(exc))[:_ERROR_EXCERPT]
            raise SyncError(
                f"Runs API connection failed ({type(exc).__name__}: {reason})", retryable=True
            ) from None
        except httpx.HTTPError as exc:
            raise SyncError(f"Runs API request failed ({type(exc).__name__})") from None

    def _interpret(self, response: httpx.Response) -> tuple[str | None, SyncError | None]:
        status = response.status_code
        if not response.is_success:
            retryable = status == 429 or status >= 500
            excerpt = self._excerpt(response)
            message = f"Runs API answered HTTP {status}: {excerpt}"
            return None, SyncError(message, status_code=status, retryable=retryable)
        cloud_run_id = _cloud_run_id(response)
        if cloud_run_id is None:
            message = f"Runs API answered HTTP {status} without a run id: {self._excerpt(response)}"
            return None, SyncError(message, status_code=status)
        return cloud_run_id, None

    def _excerpt(self, response: httpx.Response) -> str:
        text = _error_message(response) or response.text
        return self._redactor.redact(" ".join(text.split()))[:_ERROR_EXCERPT] or "(empty body)"

    def _numbered(self, error: SyncError, number: int) -> SyncError:
        return SyncError(
            f"{error.message} (attempt {number} of {self.max_attempts})",
            status_code=error.status_code,
            retryable=error.retryable,
        )

    def _retry_delay(self, attempt: Attempt) -> float | None:
        """Seconds to wait before the next attempt, or None when there is none."""
        error = attempt.error
        if error is None or not error.retryable or attempt.number >= self.max_attempts:
            return None
        delay = self.backoff.delay(attempt.number)
        if attempt.retry_after is None:
            return delay
        if attempt.retry_after > self.max_retry_after:
            return None
        return max(delay, attempt.retry_after)

    def _audit_attempt(
        self, manifest: RunManifest, attempt: Attempt, *, key: str, delay: float | None
    ) -> None:
        if self._audit is None:
            return
        outcome = "synced" if attempt.ok else ("retry" if delay is not None else "failed")
        error = attempt.error
        self._audit.append(
            "sync.attempt",
            task_id=manifest.task_id,
            run_id=manifest.run_id,
            attempt=attempt.number,
            max_attempts=self.max_attempts,
            outcome=outcome,
            key=key,
            workspace=self.workspace_id,
            status_code=attempt.status_code,
            elapsed_ms=attempt.elapsed_ms,
            cloud_run_id=attempt.cloud_run_id,
            error=error.message if error else None,
            retryable=error.retryable if error else None,
            retry_after=attempt.retry_after,
            next_delay_s=round(delay, 3) if delay is not None else None,
        )


def _checked_base_url(base_url: str) -> httpx.URL:
    try:
        url = httpx.URL(base_url.rstrip("/"))
    except httpx.InvalidURL as exc:
        raise InvalidInputError(f"invalid Runs API URL: {exc}") from None
    if url.scheme not in {"http", "https"} or not url.host:
        raise InvalidInputError("the Runs API URL must be an absolute http(s) URL")
    if url.userinfo:
        raise InvalidInputError("the Runs API URL must not carry credentials; use the token")
    return url


def _encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _json_object(response: httpx.Response) -> dict[str, Any]:
    """The answer's JSON object; empty when it is not one."""
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _cloud_run_id(response: httpx.Response) -> str | None:
    data = _json_object(response)
    value = data.get("id") or data.get("runId")
    return str(value) if isinstance(value, str | int) and str(value) else None


def _error_message(response: httpx.Response) -> str | None:
    """The message of an error answer: ``{"error": {"message": ...}}`` (the reference
    server's one shape), else a plain ``{"detail": "..."}``; None for anything else."""
    data = _json_object(response)
    error = data.get("error")
    message = error.get("message") if isinstance(error, dict) else data.get("detail")
    return message if isinstance(message, str) else None


def _retry_after(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds (delay-seconds or HTTP-date); None when absent or unreadable."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
