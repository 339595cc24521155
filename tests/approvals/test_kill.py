"""A run killed with SIGKILL while paused at a gate: Crashed in Prefect, resumed, decided once.

The run is ``orchestrator run`` in a process group of its own, killed while its plan
gate waits for a person; the crash automation (``orchestrator setup automations``,
here with a 60 s window; heartbeats come every 30 s) sets its flow run Crashed; then
``orchestrator resume`` asks the gate again from a new flow run, and only that wait is
listed and can be decided.
"""

from __future__ import annotations

import json
import time
from typing import Any
from uuid import UUID

import httpx
import pytest

from flows.heartbeats import AUTOMATION_NAME, CRASH_MESSAGE
from schemas import AgentBackend, Channel, Decision, RunStatus, WaitingGate

from .conftest import GATE_TIMEOUT, GateStack, PipelineRun, steps_backends

pytestmark = [pytest.mark.integration]

CRASH_AFTER_SECONDS = 60
CRASH_DEADLINE = CRASH_AFTER_SECONDS + 30 + 60  # window + one heartbeat + a busy machine


@pytest.fixture(scope="module")
def crash_automation(gate_stack: GateStack) -> None:
    """The automation on the test server, made by the documented command."""
    done = gate_stack.cli("setup", "automations", "--crash-after", str(CRASH_AFTER_SECONDS))
    assert done.returncode == 0, done.stderr
    assert f"automation '{AUTOMATION_NAME}'" in done.stdout


def flow_run(stack: GateStack, flow_run_id: UUID) -> dict[str, Any]:
    response = httpx.get(f"{stack.server.api_url}/flow_runs/{flow_run_id}", timeout=10)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def wait_state(stack: GateStack, flow_run_id: UUID, state: str, timeout: float) -> dict[str, Any]:
    """The flow run once its state type is ``state``; fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = flow_run(stack, flow_run_id)
        if found["state"]["type"] == state:
            return found
        assert time.monotonic() < deadline, f"{flow_run_id} still {found['state']}"
        time.sleep(1)


def listed(stack: GateStack, run_id: str) -> list[dict[str, Any]]:
    done = stack.cli_here("approvals", "--json")
    assert done.returncode == 0, done.stderr
    return [e for e in json.loads(done.stdout) if e["run_id"] == run_id]


def wait_for_new_gate(stack: GateStack, run: PipelineRun, dead: UUID) -> WaitingGate:
    """The plan gate asked again by ``run`` (a resume), once its new flow run waits.

    Until the resume's flow run exists, nothing says the old process died (but its
    missing heartbeats): the old pause may be listed for those few seconds.
    """
    deadline = time.monotonic() + GATE_TIMEOUT
    while time.monotonic() < deadline:
        waiting = stack.waiting(run.run_id)
        found = [w for w in waiting if w.notice.approval_id == "plan" and w.flow_run_id != dead]
        if found:
            return found[0]
        assert run.process.poll() is None, run.output()
        time.sleep(0.3)
    raise AssertionError(f"run {run.run_id} never asked its plan again:\n{run.output()}")


def killed_at_the_plan_gate(stack: GateStack, name: str) -> tuple[PipelineRun, UUID]:
    run = stack.start("plan-required.yaml", name)
    waiting = stack.wait_for_gate(run, "plan")
    run.kill()
    return run, waiting.flow_run_id


def test_a_run_killed_at_its_gate_crashes_then_resumes_and_is_decided_once(
    gate_stack: GateStack, crash_automation: None
) -> None:
    """On the default backend only: Crashed comes from Prefect's automation, whatever the
    backend, after a minute's wait; the test below resumes a killed gate on both."""
    run, dead = killed_at_the_plan_gate(gate_stack, "kill-approve")

    crashed = wait_state(gate_stack, dead, "CRASHED", CRASH_DEADLINE)
    assert crashed["state"]["message"] == CRASH_MESSAGE
    assert listed(gate_stack, run.run_id) == []  # the dead pause is not a wait
    assert gate_stack.manifest(run.run_id).status is RunStatus.PAUSED

    resumed = gate_stack.resume(run)
    again = wait_for_new_gate(gate_stack, resumed, dead)
    assert again.flow_run_id != dead
    assert [e["flow_run_id"] for e in listed(gate_stack, run.run_id)] == [str(again.flow_run_id)]
    new = flow_run(gate_stack, again.flow_run_id)
    assert new["name"] == f"add-text-helpers/{run.run_id}"
    assert {"resume", f"resume of {dead}"} <= set(new["tags"])

    approved = gate_stack.cli("approve", run.run_id, "--approver", "Ada", "--reason", "ok")
    assert approved.returncode == 0, approved.stderr
    assert resumed.wait() == 0, resumed.output()
    manifest = gate_stack.manifest(run.run_id)
    assert manifest.status is RunStatus.SUCCEEDED
    assert steps_backends(manifest) == {"mcp"}
    plan = manifest.approval("plan")
    assert plan is not None
    assert (plan.decision, plan.approver, plan.channel) == (Decision.APPROVE, "Ada", Channel.CLI)
    assert plan.flow_run_id == str(again.flow_run_id)

    second = gate_stack.cli_here("approve", run.run_id)
    assert second.returncode == 2
    assert "not waiting for a decision; decided so far: plan (approve by Ada (cli)" in second.stderr
    named = gate_stack.cli_here("approve", run.run_id, "--gate", "plan")
    assert named.returncode == 2
    assert "plan gate of add-text-helpers/" in named.stderr
    assert "already decided: approve by Ada (cli)" in named.stderr
    assert listed(gate_stack, run.run_id) == []
    assert flow_run(gate_stack, dead)["state"]["type"] == "CRASHED"
    assert flow_run(gate_stack, again.flow_run_id)["state"]["type"] == "COMPLETED"


def test_resume_closes_the_pause_a_dead_process_left_and_asks_the_gate_once(
    gate_stack: GateStack, crash_automation: None, backend: AgentBackend
) -> None:
    run, dead = killed_at_the_plan_gate(gate_stack, "kill-resume")
    assert flow_run(gate_stack, dead)["state"]["type"] == "PAUSED"  # before the window ends

    resumed = gate_stack.resume(run)
    again = wait_for_new_gate(gate_stack, resumed, dead)
    closed = flow_run(gate_stack, dead)["state"]
    assert closed["type"] == "CRASHED"
    assert f"continues in flow run {again.flow_run_id}" in closed["message"]
    assert [w.flow_run_id for w in gate_stack.waiting(run.run_id)] == [again.flow_run_id]

    rejected = gate_stack.cli("reject", run.run_id, "--reason", "not now", "--approver", "Bo")
    assert rejected.returncode == 0, rejected.stderr
    assert resumed.wait() == 1, resumed.output()
    manifest = gate_stack.manifest(run.run_id)
    assert manifest.status is RunStatus.REJECTED
    assert steps_backends(manifest) == {backend}  # the planner's, before the gate

    for decide in (["approve", run.run_id], ["reject", run.run_id, "--reason", "again"]):
        refused = gate_stack.cli_here(*decide)
        assert refused.returncode == 2, refused.stdout
        assert "reject by Bo (cli)" in refused.stderr
    assert listed(gate_stack, run.run_id) == []
