"""Plan gates decided from another process with the CLI, against a real Prefect server."""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import httpx
import pytest
from prefect.client.schemas import OrchestrationResult

from schemas import AgentBackend, Channel, Decision, Gate, RunStatus

from .conftest import GateStack, steps_backends

pytestmark = [pytest.mark.integration]


def branches(run_repo: object, pattern: str) -> list[str]:
    out = subprocess.run(
        ["git", "branch", "--list", pattern, "--format=%(refname:short)"],
        cwd=str(run_repo),
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.split()


def test_a_paused_plan_is_approved_from_another_process_and_the_run_completes(
    gate_stack: GateStack, backend: AgentBackend
) -> None:
    run = gate_stack.start("plan-required.yaml", "approve-cli")
    waiting = gate_stack.wait_for_gate(run, "plan")
    assert waiting.notice.summary == "plan: 2 subtasks: slugify, truncate"

    listed = gate_stack.cli("approvals", "--json")
    assert listed.returncode == 0, listed.stderr
    [entry] = [e for e in json.loads(listed.stdout) if e["run_id"] == run.run_id]
    assert entry["gate"] == "plan" and entry["approval_id"] == "plan"
    assert entry["flow_run_id"] == str(waiting.flow_run_id)
    # Links open Prefect's default (V2) UI, the one http://127.0.0.1:4200/ lands on.
    ui = gate_stack.server.ui_url
    assert entry["ui_url"] == f"{ui}/v2/runs/flow-run/{waiting.flow_run_id}"
    shown = gate_stack.cli_here("approvals", run.run_id)
    assert shown.returncode == 0, shown.stderr
    assert f"add-text-helpers/{run.run_id}" in shown.stdout
    assert "plan: 2 subtasks: slugify, truncate" in shown.stdout
    assert "Approve the plan of" in shown.stdout  # the description, as the form shows it
    paused = f"{ui}/v2/runs?state-types=%5B%22PAUSED%22%5D"
    assert f"paused runs in the Prefect UI: {paused}" in shown.stdout

    approved = gate_stack.cli(
        "approve", run.run_id, "--reason", "two small helpers", "--approver", "Grace Hopper"
    )
    assert approved.returncode == 0, approved.stderr
    assert "approved plan of add-text-helpers/" in approved.stdout
    assert f"{ui}/v2/runs/flow-run/{waiting.flow_run_id}" in approved.stdout

    assert run.wait() == 0, run.output()
    manifest = gate_stack.manifest(run.run_id)
    assert manifest.status is RunStatus.SUCCEEDED
    assert steps_backends(manifest) == {backend}
    plan = manifest.approval("plan")
    assert plan is not None and plan.gate is Gate.PLAN
    assert (plan.decision, plan.approver, plan.channel) == (
        Decision.APPROVE,
        "Grace Hopper",
        Channel.CLI,
    )
    assert plan.reason == "two small helpers"
    assert plan.decided_at is not None and plan.decided_at >= plan.requested_at
    assert "| `slugify` |" in plan.shown
    handover = manifest.approval("handover")
    assert handover is not None and handover.channel is Channel.POLICY

    again = gate_stack.cli_here("approve", run.run_id, "--gate", "plan")
    assert again.returncode == 2
    assert "already decided: approve by Grace Hopper (cli)" in again.stderr


def test_a_rejected_plan_ends_the_run_rejected_without_any_builder_request(
    gate_stack: GateStack,
) -> None:
    run = gate_stack.start("plan-rejected.yaml", "reject-cli")
    waiting = gate_stack.wait_for_gate(run, "plan")

    no_reason = gate_stack.cli_here("reject", run.run_id, "--reason", "  ")
    assert no_reason.returncode == 2
    assert "a reason is required to reject" in no_reason.stderr
    refused = server_resume(
        gate_stack, waiting.flow_run_id, {"decision": "reject", "approver": "x"}
    )
    assert refused.status.value == "REJECT"
    assert "reason" in str(refused.details)
    assert [w.flow_run_id for w in gate_stack.waiting(run.run_id)] == [waiting.flow_run_id]

    wrong_gate = gate_stack.cli_here("approve", run.run_id, "--gate", "handover")
    assert wrong_gate.returncode == 2
    assert "not waiting for a decision at gate 'handover'; it waits at plan" in wrong_gate.stderr
    unknown = gate_stack.cli_here("approve", "no-such-run")
    assert unknown.returncode == 2
    assert "unknown run 'no-such-run'" in unknown.stderr

    rejected = gate_stack.cli(
        "reject", run.run_id, "--reason", "split it differently", "--approver", "Ada"
    )
    assert rejected.returncode == 0, rejected.stderr

    assert run.wait() == 1, run.output()
    assert "was rejected: plan rejected by Ada (cli): split it differently" in run.output()
    manifest = gate_stack.manifest(run.run_id)
    assert manifest.status is RunStatus.REJECTED
    assert flow_run_state(gate_stack, run.run_id) == ("CANCELLED", "Rejected")
    assert manifest.phases.build.status.value == "pending"
    plan = manifest.approval("plan")
    assert plan is not None
    assert (plan.decision, plan.reason, plan.channel) == (
        Decision.REJECT,
        "split it differently",
        Channel.CLI,
    )
    requests = gate_stack.replay.requests()
    assert not [r for r in requests if r.get("role") == "builder" and "add-word-stats" in str(r)]
    assert not branches(run.repo, f"orchestrator/add-word-stats/{run.run_id}/*")
    audit = (gate_stack.home / "out" / "audit.log").read_text()
    decided = [json.loads(line) for line in audit.splitlines() if run.run_id in line]
    assert any(e.get("event") == "approval.decided" for e in decided)

    after = gate_stack.cli_here("reject", run.run_id, "--reason", "again")
    assert after.returncode == 2
    assert "not waiting for a decision" in after.stderr
    assert "plan (reject by Ada (cli)" in after.stderr


def test_a_plan_nobody_decides_in_time_expires(gate_stack: GateStack) -> None:
    run = gate_stack.start("plan-timeout.yaml", "timeout")
    gate_stack.wait_for_gate(run, "plan")

    assert run.wait() == 1, run.output()
    assert "expired: plan expired: no decision within 3 s" in run.output()
    manifest = gate_stack.manifest(run.run_id)
    assert manifest.status is RunStatus.EXPIRED
    assert manifest.status_reason == "plan expired: no decision within 3 s"
    plan = manifest.approval("plan")
    assert plan is not None
    assert (plan.decision, plan.reason, plan.channel) == (
        Decision.EXPIRED,
        "timeout",
        Channel.TIMEOUT,
    )
    assert plan.timeout_seconds == 3
    audit = (gate_stack.home / "out" / "audit.log").read_text()
    decided = [json.loads(line) for line in audit.splitlines() if run.run_id in line]
    assert [e["detail"]["decision"] for e in decided if e["event"] == "approval.decided"] == [
        "expired"
    ]
    late = gate_stack.cli_here("approve", run.run_id)
    assert late.returncode == 2
    assert "expired by orchestrator (timeout)" in late.stderr
    state = pipeline_state(gate_stack, run.run_id)
    assert (state["type"], state["name"]) == ("CANCELLED", "Expired")
    assert state["message"] == "plan expired: no decision within 3 s"
    shown = gate_stack.cli("show", run.run_id)
    assert "status: expired" in shown.stdout
    assert re.search(r"plan\W+expired\W+orchestrator\W+timeout", shown.stdout), shown.stdout
    listed = gate_stack.cli("runs")
    assert any(run.run_id in line and "expired" in line for line in listed.stdout.splitlines())


def server_resume(stack: GateStack, flow_run_id: object, run_input: dict[str, str]) -> Any:
    """Resume through the REST API directly, as the UI does, skipping the CLI's checks."""
    response = httpx.post(
        f"{stack.server.api_url}/flow_runs/{flow_run_id}/resume",
        json={"run_input": run_input},
        timeout=10,
    )
    response.raise_for_status()
    return OrchestrationResult.model_validate(response.json())


def flow_run_state(stack: GateStack, run_id: str) -> tuple[str, str]:
    """The state type and name of the run's pipeline flow run (named ``<task>/<run>``)."""
    state = pipeline_state(stack, run_id)
    return str(state["type"]), str(state["name"])


def pipeline_state(stack: GateStack, run_id: str) -> dict[str, Any]:
    """The state of the run's pipeline flow run (named ``<task>/<run>``), as the API shows it."""
    response = httpx.post(
        f"{stack.server.api_url}/flow_runs/filter",
        json={"flow_runs": {"name": {"like_": run_id}}},
        timeout=10,
    )
    response.raise_for_status()
    [pipeline] = [r for r in response.json() if " " not in r["name"]]
    return dict(pipeline["state"])
