"""The reference Runs API server over real HTTP: auth, idempotency, validation, faults."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from devstack.runs_api import (
    REPLAYED_HEADER,
    FaultInjector,
    FaultPlan,
    parse_faults,
)
from devstack.runs_api.__main__ import main
from orchestrator import InvalidInputError
from orchestrator.runs_api import build_import_body, idempotency_key

from .conftest import CloudServer
from .helpers import make_manifest

pytestmark = pytest.mark.integration


def _import(
    cloud: CloudServer, workspace_id: str, body: dict[str, Any], *, key: str | None = None
) -> httpx.Response:
    headers = {"x-idempotency-key": key or body["idempotencyKey"]}
    return cloud.http.post(f"/workspaces/{workspace_id}/runs/import", json=body, headers=headers)


def test_health_needs_no_token(cloud: CloudServer) -> None:
    assert httpx.get(f"{cloud.url}/health", timeout=5).json() == {"status": "ok"}


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token-value", "Basic abc"])
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/workspaces/ws/runs/import"),
        ("GET", "/workspaces/ws/runs"),
        ("GET", "/workspaces/ws/runs/run_x"),
        ("GET", "/_faults"),
        ("POST", "/_faults"),
    ],
)
def test_every_api_route_needs_the_bearer_token(
    cloud: CloudServer, authorization: str | None, method: str, path: str
) -> None:
    headers = {"authorization": authorization} if authorization else {}
    response = httpx.request(method, f"{cloud.url}{path}", headers=headers, json={}, timeout=5)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_same_key_and_body_get_the_same_answer(cloud: CloudServer, cloud_workspace_id: str) -> None:
    body = build_import_body(make_manifest())
    first = _import(cloud, cloud_workspace_id, body)
    again = _import(cloud, cloud_workspace_id, body)
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json() and first.json()["id"].startswith("run_")
    assert REPLAYED_HEADER not in first.headers and again.headers[REPLAYED_HEADER] == "true"
    assert len(cloud.runs(cloud_workspace_id)) == 1


def test_same_key_with_another_body_is_a_conflict(
    cloud: CloudServer, cloud_workspace_id: str
) -> None:
    body = build_import_body(make_manifest())
    assert _import(cloud, cloud_workspace_id, body).status_code == 200
    changed = {**body, "bucket": "other"}
    conflict = _import(cloud, cloud_workspace_id, changed)
    assert conflict.status_code == 409
    assert conflict.json()["error"]["message"].endswith("with a different body")
    assert len(cloud.runs(cloud_workspace_id)) == 1


def test_keys_are_per_workspace(cloud: CloudServer, cloud_workspace_id: str) -> None:
    body = build_import_body(make_manifest())
    one = _import(cloud, cloud_workspace_id, body).json()
    other = _import(cloud, f"{cloud_workspace_id}-b", body).json()
    assert one["id"] != other["id"]


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"summary": None}, 422),
        ({"summary": {"taskId": "t"}}, 422),
        ({"manifest": []}, 422),
        ({"unexpected": 1}, 422),
        ({"idempotencyKey": "f" * 64}, 400),
    ],
)
def test_bad_bodies_are_refused_and_nothing_is_stored(
    cloud: CloudServer, cloud_workspace_id: str, change: dict[str, Any], status: int
) -> None:
    manifest = make_manifest()
    body = {**build_import_body(manifest), **change}
    key = idempotency_key(manifest.task_id, manifest.run_id)
    assert _import(cloud, cloud_workspace_id, body, key=key).status_code == status
    assert cloud.runs(cloud_workspace_id) == []


def test_the_idempotency_header_is_required(cloud: CloudServer, cloud_workspace_id: str) -> None:
    body = build_import_body(make_manifest())
    response = cloud.http.post(f"/workspaces/{cloud_workspace_id}/runs/import", json=body)
    assert response.status_code == 400


def test_list_pages_and_read_one(cloud: CloudServer, cloud_workspace_id: str) -> None:
    manifests = [make_manifest("task-a"), make_manifest("task-a"), make_manifest("task-b")]
    ids = [_import(cloud, cloud_workspace_id, build_import_body(m)).json()["id"] for m in manifests]
    base = f"/workspaces/{cloud_workspace_id}/runs"
    page = cloud.http.get(base, params={"limit": 2, "offset": 1}).json()
    assert page["total"] == 3 and [item["id"] for item in page["items"]] == ids[1:]
    only_b = cloud.http.get(base, params={"taskId": "task-b"}).json()
    assert [item["summary"]["runId"] for item in only_b["items"]] == [manifests[2].run_id]
    run = cloud.http.get(f"{base}/{ids[0]}").json()
    assert run["manifest"]["run_id"] == manifests[0].run_id
    assert run["idempotencyKey"] == idempotency_key(manifests[0].task_id, manifests[0].run_id)
    assert cloud.http.get(f"{base}/run_missing").status_code == 404


def test_faults_are_set_read_and_cleared_over_http(cloud: CloudServer) -> None:
    cloud.set_faults(fail_next=2, fail_status=429, retry_after=3)
    plan = cloud.http.get("/_faults").json()
    assert (plan["fail_next"], plan["fail_status"], plan["retry_after"]) == (2, 429, 3)
    assert cloud.http.post("/_faults", json={"fail_status": 404}).status_code == 422
    cloud.clear_faults()
    assert cloud.http.get("/_faults").json()["fail_next"] == 0


def test_injected_failures_carry_retry_after_and_store_nothing(
    cloud: CloudServer, cloud_workspace_id: str
) -> None:
    cloud.set_faults(fail_next=1, fail_status=429, retry_after=2)
    body = build_import_body(make_manifest())
    failed = _import(cloud, cloud_workspace_id, body)
    assert (failed.status_code, failed.headers["retry-after"]) == (429, "2")
    assert cloud.runs(cloud_workspace_id) == []
    assert _import(cloud, cloud_workspace_id, body).status_code == 200


def test_a_dropped_answer_was_committed(cloud: CloudServer, cloud_workspace_id: str) -> None:
    cloud.set_faults(drop_after_commit=1)
    body = build_import_body(make_manifest())
    with pytest.raises(httpx.RemoteProtocolError):
        _import(cloud, cloud_workspace_id, body)
    (stored,) = cloud.runs(cloud_workspace_id)
    replay = _import(cloud, cloud_workspace_id, body)
    assert replay.json()["id"] == stored["id"] and replay.headers[REPLAYED_HEADER] == "true"


def test_delay_holds_the_answer(cloud: CloudServer, cloud_workspace_id: str) -> None:
    cloud.set_faults(delay=0.3, delay_next=1)
    body = build_import_body(make_manifest())
    started = time.monotonic()
    assert _import(cloud, cloud_workspace_id, body).status_code == 200
    assert time.monotonic() - started >= 0.3


# -- fault plans, in process -----------------------------------------------------------


def test_fault_counters_count_down_in_order() -> None:
    injector = FaultInjector(
        FaultPlan(fail_next=1, fail_status=503, drop_after_commit=1, delay=0.5, delay_next=1)
    )
    first, second, third = injector.next(), injector.next(), injector.next()
    assert (first.fail_status, first.delay, first.drop) == (503, 0.5, False)
    assert (second.fail_status, second.delay, second.drop) == (None, 0.0, True)
    assert (third.fail_status, third.delay, third.drop) == (None, 0.0, False)
    assert injector.plan().fail_next == 0


def test_fault_rates_are_seeded() -> None:
    plan = FaultPlan(fail_rate=0.1, drop_rate=0.1, seed=7)
    injectors = [FaultInjector(plan), FaultInjector(plan)]
    runs = [[injector.next() for _ in range(2000)] for injector in injectors]
    assert runs[0] == runs[1]
    failed = sum(a.fail_status is not None for a in runs[0])
    dropped = sum(a.drop for a in runs[0])
    assert 120 < failed < 280 and 120 < dropped < 280


@pytest.mark.parametrize(
    "plan",
    [{"fail_status": 404}, {"fail_rate": 0.7, "drop_rate": 0.5}, {"fail_next": -1}, {"x": 1}],
)
def test_bad_fault_plans_are_refused(plan: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        FaultPlan.model_validate(plan)


def test_fault_plan_text_errors_are_input_errors() -> None:
    with pytest.raises(InvalidInputError, match="fail_status"):
        parse_faults('{"fail_status": 302}')
    assert parse_faults(None) is None


def test_the_server_refuses_to_start_without_its_token(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("RUNS_API_TEST_TOKEN", raising=False)
    argv = [
        "--port",
        "0",
        "--db",
        str(tmp_path / "db.sqlite3"),
        "--token-env",
        "RUNS_API_TEST_TOKEN",
    ]
    assert main(argv) == 2
    assert "RUNS_API_TEST_TOKEN" in capsys.readouterr().err
    assert not (tmp_path / "db.sqlite3").exists()
