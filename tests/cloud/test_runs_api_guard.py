"""The reference Runs API's edges over real HTTP: token before body, the body limit, strict
JSON, exact texts, one error shape, and the seed client's summary."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack import ServerProcess
from devstack.runs_api import DEFAULT_MAX_BODY_BYTES, spawn_server
from orchestrator import SyncError
from orchestrator.runs_api import RunsApiClient, build_import_body, idempotency_key

from .conftest import CloudServer
from .helpers import FAST_BACKOFF, make_manifest

pytestmark = pytest.mark.integration

MIB = 1024 * 1024


def _post(
    cloud: CloudServer,
    workspace_id: str,
    content: bytes | Iterator[bytes],
    *,
    key: str | None,
    token: str | None = None,
) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if key is not None:
        headers["x-idempotency-key"] = key
    headers["authorization"] = f"Bearer {token or cloud.token}"
    url = f"{cloud.url}/workspaces/{workspace_id}/runs/import"
    return httpx.post(url, content=content, headers=headers, timeout=60)


def _padded(size: int) -> tuple[bytes, str]:
    """An import body of about ``size`` bytes (a manifest with a long note), and its key."""
    manifest = make_manifest()
    body = build_import_body(manifest)
    body["manifest"]["padding"] = "x" * size
    return json.dumps(body).encode(), idempotency_key(manifest.task_id, manifest.run_id)


def _assert_error(response: httpx.Response, status: int, code: str) -> str:
    """The response is an error in the one shape; returns its message."""
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == ["error"] and sorted(body["error"]) == ["code", "message"]
    assert body["error"]["code"] == code
    message: str = body["error"]["message"]
    return message


def _peak_rss_kib(pid: int) -> int:
    """The process's high-water resident set (``VmHWM``), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmHWM in /proc/{pid}/status")


def _seed_summary_body(task_id: str, run_id: str) -> dict[str, Any]:
    """What the seed's client sends: its ``RunSummary`` (no ``status``) and the manifest."""
    summary = {
        "taskId": task_id,
        "runId": run_id,
        "mode": "mcp",
        "plan": {"status": "approved", "subtasks": 2},
        "build": {"status": "succeeded"},
        "test": {"status": "passed", "exitCode": 0},
        "review": {"status": "approved"},
        "timestamp": "2025-10-16T12:00:00Z",
    }
    return {"summary": summary, "manifest": {"taskId": task_id, "runId": run_id}}


def test_the_seed_clients_summary_without_status_is_accepted(
    cloud: CloudServer, cloud_workspace_id: str
) -> None:
    body = _seed_summary_body("seed-task", "seed-run-1")
    key = idempotency_key("seed-task", "seed-run-1")
    response = _post(cloud, cloud_workspace_id, json.dumps(body).encode(), key=key)
    assert response.status_code == 200, response.text
    (stored,) = cloud.runs(cloud_workspace_id)
    assert stored["id"] == response.json()["id"]
    assert stored["summary"] == body["summary"]  # kept as sent, no "status": null added


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_over_the_default_limit_is_413_and_not_stored(
    cloud: CloudServer, cloud_workspace_id: str, chunked: bool
) -> None:
    content, key = _padded(DEFAULT_MAX_BODY_BYTES)
    sent: bytes | Iterator[bytes] = content
    if chunked:  # no content-length: the server must count as it reads
        sent = iter([content[i : i + 64 * 1024] for i in range(0, len(content), 64 * 1024)])
    response = _post(cloud, cloud_workspace_id, sent, key=key)
    message = _assert_error(response, 413, "payload_too_large")
    assert message == f"the request body is over the limit of {DEFAULT_MAX_BODY_BYTES} bytes"
    assert cloud.runs(cloud_workspace_id) == []


def test_a_body_just_under_the_limit_is_stored(cloud: CloudServer, cloud_workspace_id: str) -> None:
    content, key = _padded(DEFAULT_MAX_BODY_BYTES - 8 * 1024)
    assert len(content) <= DEFAULT_MAX_BODY_BYTES
    assert _post(cloud, cloud_workspace_id, content, key=key).status_code == 200
    assert len(cloud.runs(cloud_workspace_id)) == 1


@pytest.mark.parametrize("token", ["wrong-token", None], ids=["wrong-token", "authorised"])
def test_a_100_mib_body_is_refused_before_it_is_read(
    cloud: CloudServer, cloud_workspace_id: str, token: str | None
) -> None:
    """Unauthorised: 401 from the headers alone; authorised: 413 from its content-length.
    Either way the server's peak memory stays where it was (reading it would add 100 MiB)."""
    content = b'{"summary": "' + b"x" * (100 * MIB) + b'"}'
    before = _peak_rss_kib(cloud.process.pid)
    response = _post(cloud, cloud_workspace_id, content, key="k", token=token)
    after = _peak_rss_kib(cloud.process.pid)
    if token is None:
        _assert_error(response, 413, "payload_too_large")
    else:
        message = _assert_error(response, 401, "unauthorized")
        assert message == "missing or invalid bearer token"
        assert response.headers["www-authenticate"] == "Bearer"
    assert after - before < 8 * 1024, f"peak RSS grew from {before} KiB to {after} KiB"
    assert cloud.runs(cloud_workspace_id) == []
    assert cloud.http.get("/health").json() == {"status": "ok"}  # and it still serves


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_are_refused_not_stored_as_null(
    cloud: CloudServer, cloud_workspace_id: str, literal: str
) -> None:
    manifest = make_manifest()
    text = json.dumps(build_import_body(manifest))
    content = text.replace('"manifest": {', f'"manifest": {{"score": {literal}, ', 1).encode()
    key = idempotency_key(manifest.task_id, manifest.run_id)
    message = _assert_error(_post(cloud, cloud_workspace_id, content, key=key), 422, "invalid_body")
    assert message.startswith("invalid import body: ") and literal.lstrip("-") in message
    assert cloud.runs(cloud_workspace_id) == []


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("k" * 201, "the x-idempotency-key header must be at most 200 characters"),
        (None, "the x-idempotency-key header is required"),
    ],
    ids=["201-characters", "missing"],
)
def test_idempotency_key_errors_say_exactly_what_is_wrong(
    cloud: CloudServer, cloud_workspace_id: str, key: str | None, message: str
) -> None:
    body = build_import_body(make_manifest())
    del body["idempotencyKey"]
    response = _post(cloud, cloud_workspace_id, json.dumps(body).encode(), key=key)
    assert _assert_error(response, 400, "bad_request") == message
    assert cloud.runs(cloud_workspace_id) == []


def test_a_200_character_key_is_accepted(cloud: CloudServer, cloud_workspace_id: str) -> None:
    body = build_import_body(make_manifest())
    del body["idempotencyKey"]
    response = _post(cloud, cloud_workspace_id, json.dumps(body).encode(), key="k" * 200)
    assert response.status_code == 200 and response.json()["idempotencyKey"] == "k" * 200


def _conflict(cloud: CloudServer, workspace_id: str) -> httpx.Response:
    body = build_import_body(make_manifest())
    key = body["idempotencyKey"]
    assert _post(cloud, workspace_id, json.dumps(body).encode(), key=key).status_code == 200
    changed = json.dumps({**body, "bucket": "other"}).encode()
    return _post(cloud, workspace_id, changed, key=key)


def test_every_error_has_one_shape(cloud: CloudServer, cloud_workspace_id: str) -> None:
    base = f"/workspaces/{cloud_workspace_id}/runs"
    unknown_field = json.dumps({**build_import_body(make_manifest()), "x": 1}).encode()
    cloud.set_faults(fail_next=1, fail_status=429, retry_after=1)
    injected = _post(cloud, cloud_workspace_id, b"{}", key="k")
    answers = [
        (httpx.get(f"{cloud.url}{base}", timeout=10), 401, "unauthorized"),
        (cloud.http.get(f"{base}/run_missing"), 404, "not_found"),
        (cloud.http.get("/no/such/path"), 404, "not_found"),
        (cloud.http.delete(base), 405, "method_not_allowed"),
        (cloud.http.get(base, params={"limit": 0}), 422, "invalid_body"),
        (cloud.http.post("/_faults", json={"fail_status": 302}), 422, "invalid_body"),
        (_post(cloud, cloud_workspace_id, unknown_field, key="k"), 422, "invalid_body"),
        (_post(cloud, cloud_workspace_id, b"[1]", key="k"), 422, "invalid_body"),
        (_post(cloud, cloud_workspace_id, b"{not json", key="k"), 422, "invalid_body"),
        (_conflict(cloud, cloud_workspace_id), 409, "conflict"),
        (injected, 429, "too_many_requests"),
    ]
    messages = [_assert_error(response, status, code) for response, status, code in answers]
    assert messages[1] == f"no run 'run_missing' in workspace {cloud_workspace_id!r}"
    assert messages[4] == "invalid request: query.limit: Input should be greater than or equal to 1"
    assert messages[6] == "invalid import body: x: Extra inputs are not permitted"
    assert messages[7] == "invalid import body: (body): must be a JSON object"
    assert messages[9] == "this idempotency key was already used with a different body"


SMALL_SERVER_TOKEN = secrets.token_hex(16)


@pytest.fixture
def small_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server of its own with a 20 000-byte body limit (``--max-body-bytes``)."""
    process = spawn_server(
        db_path=tmp_path / "runs.sqlite3",
        token=SMALL_SERVER_TOKEN,
        log_path=tmp_path / "server.log",
        max_body_bytes=20_000,
    )
    try:
        yield process
    finally:
        process.stop()


def test_the_limit_is_configurable_and_our_client_reports_the_413(
    small_server: ServerProcess,
) -> None:
    with RunsApiClient(small_server.url, "ws", SMALL_SERVER_TOKEN, backoff=FAST_BACKOFF) as client:
        assert client.import_run(make_manifest()).attempts == 1  # a few KB: under the limit
        big = make_manifest()
        big.status_reason = "y" * 25_000
        with pytest.raises(SyncError) as raised:
            client.import_run(big)
    error = raised.value
    assert (error.status_code, error.retryable) == (413, False)
    assert error.message == (
        "Runs API answered HTTP 413: the request body is over the limit of 20000 bytes"
        " (attempt 1 of 3)"
    )
