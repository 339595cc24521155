"""codex's escalated exec requests, decided by a person through the same pause mechanism."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from schemas import Channel, Decision, Gate, RunStatus

from .conftest import GateStack

pytestmark = [pytest.mark.integration]


def files_on(repo: Path, branch: str) -> list[str]:
    return subprocess.run(
        ["git", "ls-tree", "-r", "--name-only", branch],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()


def test_an_approved_command_runs_and_a_denied_one_does_not(gate_stack: GateStack) -> None:
    run = gate_stack.start("escalated-commands.yaml", "escalation")

    allowed = gate_stack.wait_for_gate(run, "command")
    assert allowed.notice.approval_id == "command-rp-build-escalated-allowed-0"
    assert allowed.notice.summary.startswith(
        "command OUTSIDE the sandbox: python -c \"open('allowed-marker.txt'"
    )
    assert allowed.flow_run_name.startswith("build ")  # the build subflow pauses
    approved = gate_stack.cli(
        "approve", run.run_id, "--gate", "command", "--approver", "Ops", "--reason", "fine"
    )
    assert approved.returncode == 0, approved.stderr

    refused = gate_stack.wait_for_gate(run, "command-rp-build-escalated-refused-2")
    denied = gate_stack.cli_here(
        "reject", run.run_id, "--reason", "no markers outside the sandbox", "--approver", "Ops"
    )
    assert denied.returncode == 0, denied.stderr
    assert refused.notice.gate is Gate.COMMAND

    gate_stack.wait_for_gate(run, "handover")
    handed_over = gate_stack.cli_here("approve", run.run_id, "--approver", "Ops")
    assert handed_over.returncode == 0, handed_over.stderr

    assert run.wait() == 0, run.output()
    manifest = gate_stack.manifest(run.run_id)
    assert manifest.status is RunStatus.SUCCEEDED
    assert manifest.result is not None and manifest.result.branch is not None
    result_files = files_on(run.repo, manifest.result.branch)
    assert "allowed-marker.txt" in result_files  # the approved command ran
    assert "refused-marker.txt" not in result_files  # the denied one did not
    assert "NOTES.md" in result_files  # and the agent carried on after the denial

    allowed_step, refused_step = manifest.step("build-allowed"), manifest.step("build-refused")
    assert allowed_step is not None and refused_step is not None
    assert [(c.status, c.exit_code) for c in allowed_step.commands] == [("completed", 0)]
    sandbox_refused, denied_command = refused_step.commands
    assert (denied_command.status, denied_command.exit_code) == ("denied", None)
    # The command it ran without asking, writing the target's main checkout: refused.
    assert "outside-marker.txt" in sandbox_refused.command
    assert (sandbox_refused.status, sandbox_refused.exit_code) == ("refused-by-sandbox", 1)
    assert sandbox_refused.reason is not None
    assert "Read-only file system" in sandbox_refused.reason
    assert not (run.repo / "outside-marker.txt").exists()

    first = manifest.approval(allowed.notice.approval_id)
    second = manifest.approval(refused.notice.approval_id)
    assert first is not None and second is not None
    assert (first.gate, first.decision, first.approver, first.channel) == (
        Gate.COMMAND,
        Decision.APPROVE,
        "Ops",
        Channel.CLI,
    )
    assert (second.decision, second.reason) == (Decision.REJECT, "no markers outside the sandbox")
    assert (first.left_sandbox, second.left_sandbox) == (True, False)
    assert "runs with the worker's full access" in first.shown
    assert "allowed-marker.txt" in first.shown
    assert f"work/escalated-commands/{run.run_id}/subtasks/allowed" in first.shown  # the cwd
    assert first.timeout_seconds == 120
    policy = manifest.approval_policy
    assert policy is not None and policy.commands.value == "ask_person"
    handover = manifest.approval("handover")
    assert handover is not None and handover.channel is Channel.CLI
    assert not handover.left_sandbox


def test_under_the_dev_defaults_an_escalated_command_is_denied_without_asking(
    gate_stack: GateStack,
) -> None:
    """No one is asked in an unattended run: the command never runs, the manifest says why."""
    run = gate_stack.start("escalated-commands-unattended.yaml", "unattended")
    assert run.wait() == 0, run.output()
    manifest = gate_stack.manifest(run.run_id)
    assert manifest.status is RunStatus.SUCCEEDED
    assert manifest.approval_policy is not None
    assert manifest.approval_policy.source == "env dev defaults"
    assert all(a.gate is not Gate.COMMAND for a in manifest.approvals)  # no one was asked
    assert not any(a.left_sandbox for a in manifest.approvals)
    allowed_step = manifest.step("build-allowed")
    assert allowed_step is not None
    [command] = allowed_step.commands
    assert command.status == "denied"
    assert command.reason == (
        "no person is asked in an unattended run (env dev defaults) (an approved command "
        "would run outside the sandbox): denied"
    )
    refused_step = manifest.step("build-refused")
    assert refused_step is not None
    assert [c.status for c in refused_step.commands] == ["refused-by-sandbox", "denied"]
    assert manifest.result is not None and manifest.result.branch is not None
    assert "allowed-marker.txt" not in files_on(run.repo, manifest.result.branch)
