"""The Runs API client against ``httpx.MockTransport``: wire format, retries, redaction."""

from __future__ import annotations

import email.utils
import hashlib
import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from orchestrator import AuditLog, InvalidInputError, Redactor, SyncError, Workspace
from orchestrator.cloud_settings import client_from_settings, load_cloud_settings
from orchestrator.runs_api import (
    Backoff,
    RunsApiClient,
    build_import_body,
    idempotency_key,
)

from .helpers import Handler, Sleeps, make_manifest, mock_client, sync_attempt_lines

TOKEN = "runs-api-token-0123456789abcdef"


def ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"id": "cloud-1"})


def scripted(*responses: httpx.Response | Exception) -> tuple[list[httpx.Request], Handler]:
    """A handler answering with ``responses`` in order, and the requests it saw."""
    seen: list[httpx.Request] = []
    queue = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = queue.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return seen, handler


# -- wire format -----------------------------------------------------------------------


def test_idempotency_key_is_lowercase_sha256_of_task_colon_run() -> None:
    key = idempotency_key("task-a", "run-1")
    assert key == hashlib.sha256(b"task-a:run-1").hexdigest()
    assert len(key) == 64 and key == key.lower()
    assert idempotency_key("a", "bc") != idempotency_key("ab", "c")


def test_import_body_carries_the_summary_and_the_manifest() -> None:
    manifest = make_manifest("demo-task", "run-1")
    body = build_import_body(manifest, bucket="nightly")
    summary = body["summary"]
    assert summary["taskId"] == "demo-task" and summary["runId"] == "run-1"
    assert summary["status"] == "succeeded" and summary["mode"] == "mcp"
    assert summary["approvals"][0]["decision"] == "approve"
    assert summary["artifacts"] == [{"name": "plan.json", "sha256": "c" * 64, "size": 42}]
    assert summary["tokens"]["inputTokens"] == 150
    assert summary["tokens"]["totalTokens"] == 175
    assert summary["timestamp"] == summary["finishedAt"]
    assert body["idempotencyKey"] == idempotency_key("demo-task", "run-1")
    assert body["bucket"] == "nightly"
    assert body["manifest"]["task_id"] == "demo-task"
    assert "sync" not in body["manifest"] and "updated_at" not in body["manifest"]


def test_import_body_does_not_change_when_the_sync_state_is_mirrored() -> None:
    manifest = make_manifest()
    before = build_import_body(manifest)
    manifest.updated_at = manifest.updated_at + timedelta(minutes=1)
    manifest.sync = None
    assert build_import_body(manifest) == before


def test_request_path_headers_and_body() -> None:
    seen, handler = scripted(httpx.Response(201, json={"id": "cloud-7"}))
    manifest = make_manifest()
    with mock_client(handler, token=TOKEN) as client:
        result = client.import_run(manifest)
    (request,) = seen
    assert request.method == "POST"
    assert request.url.path == "/api/workspaces/ws-test/runs/import"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["x-idempotency-key"] == idempotency_key(
        manifest.task_id, manifest.run_id
    )
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == build_import_body(manifest)
    assert (result.cloud_run_id, result.attempts) == ("cloud-7", 1)


@pytest.mark.parametrize("answer", [{"id": "cloud-1"}, {"runId": "cloud-1"}])
def test_success_takes_id_or_run_id(answer: dict[str, str]) -> None:
    _, handler = scripted(httpx.Response(200, json=answer))
    with mock_client(handler, token=TOKEN) as client:
        assert client.import_run(make_manifest()).cloud_run_id == "cloud-1"


def test_success_without_an_id_is_an_error_not_retried() -> None:
    seen, handler = scripted(httpx.Response(200, json={"ok": True}))
    with mock_client(handler, token=TOKEN) as client, pytest.raises(SyncError) as caught:
        client.import_run(make_manifest())
    assert (caught.value.status_code, caught.value.retryable, len(seen)) == (200, False, 1)


# -- retries ---------------------------------------------------------------------------


def test_two_failures_then_success_takes_three_attempts_with_backoff(tmp_path) -> None:
    audit = AuditLog(tmp_path)
    sleeps = Sleeps()
    seen, handler = scripted(
        httpx.Response(500), httpx.Response(503), httpx.Response(200, json={"id": "c"})
    )
    backoff = Backoff(base=1.0, factor=2.0, max_delay=30.0, jitter=0.5)
    with mock_client(handler, token=TOKEN, audit=audit, sleep=sleeps, backoff=backoff) as client:
        result = client.import_run(make_manifest())
    assert (result.attempts, len(seen)) == (3, 3)
    assert 0.5 <= sleeps[0] <= 1.0 and 1.0 <= sleeps[1] <= 2.0
    lines = sync_attempt_lines(audit)
    assert [line["detail"]["outcome"] for line in lines] == ["retry", "retry", "synced"]
    assert [line["detail"]["status_code"] for line in lines] == [500, 503, 200]


RETRYABLE = [
    (httpx.Response(429), 429),
    (httpx.Response(500), 500),
    (httpx.Response(502), 502),
    (httpx.Response(503), 503),
    (httpx.Response(504), 504),
    (httpx.ReadTimeout("read timed out"), None),
    (httpx.ConnectTimeout("connect timed out"), None),
    (httpx.ConnectError("connection refused"), None),
    (httpx.RemoteProtocolError("server disconnected"), None),
]


@pytest.mark.parametrize(("failure", "status"), RETRYABLE)
def test_retryable_failures_are_tried_three_times(
    failure: httpx.Response | Exception, status: int | None, tmp_path
) -> None:
    audit = AuditLog(tmp_path)
    sleeps = Sleeps()
    seen, handler = scripted(failure, failure, failure)
    with mock_client(handler, token=TOKEN, audit=audit, sleep=sleeps) as client:
        with pytest.raises(SyncError) as caught:
            client.import_run(make_manifest())
    assert len(seen) == 3 and len(sleeps) == 2
    assert caught.value.retryable and caught.value.status_code == status
    assert "attempt 3 of 3" in str(caught.value)
    assert [line["detail"]["outcome"] for line in sync_attempt_lines(audit)] == [
        "retry",
        "retry",
        "failed",
    ]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 408, 409, 413, 422])
def test_other_4xx_are_never_retried(status: int, tmp_path) -> None:
    audit = AuditLog(tmp_path)
    sleeps = Sleeps()
    seen, handler = scripted(httpx.Response(status, json={"detail": "no"}))
    with mock_client(handler, token=TOKEN, audit=audit, sleep=sleeps) as client:
        with pytest.raises(SyncError) as caught:
            client.import_run(make_manifest())
    assert (len(seen), sleeps) == (1, [])
    assert caught.value.status_code == status and not caught.value.retryable
    assert f"HTTP {status}: no" in str(caught.value)
    assert len(sync_attempt_lines(audit)) == 1


def test_retry_after_seconds_is_honoured() -> None:
    sleeps = Sleeps()
    _, handler = scripted(
        httpx.Response(429, headers={"retry-after": "7"}), httpx.Response(200, json={"id": "c"})
    )
    with mock_client(handler, token=TOKEN, sleep=sleeps) as client:
        assert client.import_run(make_manifest()).attempts == 2
    assert sleeps == [7.0]


def test_retry_after_http_date_is_honoured() -> None:
    sleeps = Sleeps()
    when = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=5), usegmt=True)
    _, handler = scripted(
        httpx.Response(503, headers={"retry-after": when}), httpx.Response(200, json={"id": "c"})
    )
    with mock_client(handler, token=TOKEN, sleep=sleeps) as client:
        client.import_run(make_manifest())
    assert len(sleeps) == 1 and 3.5 <= sleeps[0] <= 5.0


def test_retry_after_beyond_the_cap_ends_the_import_as_retryable() -> None:
    sleeps = Sleeps()
    seen, handler = scripted(httpx.Response(429, headers={"retry-after": "3600"}))
    with mock_client(handler, token=TOKEN, sleep=sleeps, max_retry_after=60) as client:
        with pytest.raises(SyncError) as caught:
            client.import_run(make_manifest())
    assert (len(seen), sleeps) == (1, [])
    assert caught.value.retryable and caught.value.status_code == 429


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    backoff = Backoff(base=1.0, factor=2.0, max_delay=5.0, jitter=0.5)
    assert [backoff.delay(n, rand=lambda: 0.0) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 5.0]
    assert [backoff.delay(n, rand=lambda: 1.0) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 2.5]


# -- secrets ---------------------------------------------------------------------------


def test_the_token_reaches_no_error_and_no_audit_line(tmp_path) -> None:
    audit = AuditLog(tmp_path, redactor=Redactor())
    redactor = Redactor()
    echo = httpx.Response(500, json={"detail": f"bad token {TOKEN}"})
    _, handler = scripted(echo, httpx.ConnectError(f"refused for {TOKEN}"), echo)
    with mock_client(handler, token=TOKEN, audit=audit, redactor=redactor) as client:
        with pytest.raises(SyncError) as caught:
            client.import_run(make_manifest())
    assert TOKEN not in str(caught.value) and TOKEN not in repr(caught.value)
    assert caught.value.__cause__ is None and caught.value.__context__ is None
    log = (tmp_path / "audit.log").read_text()
    assert TOKEN not in log and "authorization" not in log.lower()
    assert len(sync_attempt_lines(audit)) == 3


def test_the_token_is_registered_with_the_redactor() -> None:
    redactor = Redactor()
    with mock_client(ok, token=TOKEN, redactor=redactor):
        assert redactor.redact(f"x {TOKEN} y") == "x *** y"


@pytest.mark.parametrize(
    ("base_url", "workspace_id", "token", "options"),
    [
        ("ftp://runs.test", "ws", TOKEN, {}),
        ("http://user:pw@runs.test", "ws", TOKEN, {}),
        ("not a url", "ws", TOKEN, {}),
        ("http://runs.test", "../ws", TOKEN, {}),
        ("http://runs.test", "ws", "", {}),
        ("http://runs.test", "ws", TOKEN, {"max_attempts": 0}),
    ],
)
def test_bad_configuration_is_refused(
    base_url: str, workspace_id: str, token: str, options: dict[str, int]
) -> None:
    with pytest.raises(InvalidInputError):
        RunsApiClient(base_url, workspace_id, token, transport=httpx.MockTransport(ok), **options)


def test_client_from_environment_settings(
    monkeypatch: pytest.MonkeyPatch, workspace: Workspace
) -> None:
    monkeypatch.setenv("ORCHESTRATOR_CLOUD_URL", "http://runs.test")
    monkeypatch.setenv("ORCHESTRATOR_CLOUD_WORKSPACE", "ws-env")
    monkeypatch.setenv("ORCHESTRATOR_CLOUD_TOKEN", TOKEN)
    settings = load_cloud_settings()
    assert TOKEN not in repr(settings)
    transport = httpx.MockTransport(ok)
    with client_from_settings(settings, audit=workspace.audit, transport=transport) as client:
        assert client.workspace_id == "ws-env"
        assert client.import_run(make_manifest()).cloud_run_id == "cloud-1"


def test_missing_settings_name_the_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("URL", "WORKSPACE", "TOKEN"):
        monkeypatch.delenv(f"ORCHESTRATOR_CLOUD_{name}", raising=False)
    monkeypatch.setenv("ORCHESTRATOR_CLOUD_URL", "http://runs.test")
    with pytest.raises(InvalidInputError) as caught:
        load_cloud_settings()
    assert "ORCHESTRATOR_CLOUD_WORKSPACE" in str(caught.value)
    assert "ORCHESTRATOR_CLOUD_TOKEN" in str(caught.value)
