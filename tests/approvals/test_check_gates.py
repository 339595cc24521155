"""The gates a run's own checks open: stale specs before the plan, a diff over budget
before the hand-over. A person decides each one with the CLI."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from schemas import Decision, Gate, RunStatus

from .conftest import GateStack

pytestmark = [pytest.mark.integration]

STALE_SPEC = """---
id: textkit
title: What textkit offers
relates_to: [textkit/]
risk: low
owners: [ada]
last_review: 2025-01-15
---
textkit offers small text helpers.
"""


def with_stale_spec(repo: Path) -> None:
    spec = repo / "docs" / "specs" / "textkit.md"
    spec.parent.mkdir(parents=True)
    spec.write_text(STALE_SPEC)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "spec"],
        cwd=repo,
        check=True,
    )


def test_a_stale_spec_waits_for_a_person_who_lets_the_run_go_on(gate_stack: GateStack) -> None:
    run = gate_stack.start("spec-checked.yaml", "spec-approved", prepare=with_stale_spec)
    waiting = gate_stack.wait_for_gate(run, "spec")
    assert waiting.notice.gate is Gate.SPEC
    shown = gate_stack.cli_here("approvals", run.run_id)
    assert "docs/specs/textkit.md: last reviewed" in shown.stdout
    assert "the limit is 30" in shown.stdout

    approved = gate_stack.cli("approve", run.run_id, "--reason", "spec is fine as it is")
    assert approved.returncode == 0, approved.stderr

    assert run.wait() == 0, run.output()
    manifest = gate_stack.manifest(run.run_id)
    assert manifest.status is RunStatus.SUCCEEDED
    spec = manifest.approval("spec")
    assert spec is not None and spec.decision is Decision.APPROVE
    assert spec.reason == "spec is fine as it is"


def test_a_stale_spec_rejected_ends_the_run_before_any_agent_call(
    gate_stack: GateStack,
) -> None:
    run = gate_stack.start("spec-checked.yaml", "spec-rejected", prepare=with_stale_spec)
    gate_stack.wait_for_gate(run, "spec")
    requests_before = len(gate_stack.replay.requests())

    rejected = gate_stack.cli("reject", run.run_id, "--reason", "review the spec first")
    assert rejected.returncode == 0, rejected.stderr

    run.wait()
    manifest = gate_stack.manifest(run.run_id)
    assert manifest.status is RunStatus.REJECTED
    assert "spec rejected by" in (manifest.status_reason or "")
    assert "review the spec first" in (manifest.status_reason or "")
    assert len(gate_stack.replay.requests()) == requests_before  # no model call at all
    assert manifest.phases.plan.steps == []


def test_a_change_over_its_diff_budget_waits_before_the_hand_over(gate_stack: GateStack) -> None:
    run = gate_stack.start("diff-budget.yaml", "over-budget")
    waiting = gate_stack.wait_for_gate(run, "diff-budget")
    assert waiting.notice.gate is Gate.DIFF_BUDGET
    shown = gate_stack.cli_here("approvals", run.run_id)
    assert "5 files changed; the budget is 3" in shown.stdout, shown.stdout

    rejected = gate_stack.cli("reject", run.run_id, "--reason", "split it in two")
    assert rejected.returncode == 0, rejected.stderr

    run.wait()
    manifest = gate_stack.manifest(run.run_id)
    assert manifest.status is RunStatus.REJECTED
    assert manifest.approval("handover") is None  # rejected before the hand-over gate
    assert manifest.result is not None and manifest.result.branch  # kept for a look


def test_a_rejected_hand_over_leaves_a_draft_a_person_turns_into_an_entry(
    gate_stack: GateStack, tmp_path: Path
) -> None:
    run = gate_stack.start("handover-required.yaml", "draft")
    gate_stack.wait_for_gate(run, "handover")
    reason = "lines over 88 columns again: the library should catch those"
    rejected = gate_stack.cli("reject", run.run_id, "--reason", reason)
    assert rejected.returncode == 0, rejected.stderr
    run.wait()
    assert gate_stack.manifest(run.run_id).status is RunStatus.REJECTED

    listed = gate_stack.cli("library", "drafts", "--json")
    assert listed.returncode == 0, listed.stderr
    [draft] = [d for d in json.loads(listed.stdout) if d["run_id"] == run.run_id]
    assert (draft["origin"], draft["reason"]) == ("handover-rejected", reason)
    index = gate_stack.home / "library" / "index.yaml"
    assert not index.exists()  # nothing enters the library by itself

    entry = tmp_path / "short-lines.yaml"
    entry.write_text(
        "name: short-lines\nversion: 1.0.0\nkind: linter\ntool: ruff\n"
        "applies_to: {languages: [python]}\nrun: {args: [--select, E501]}\n"
        "description: Lines of at most 88 characters.\n"
    )
    accepted = gate_stack.cli(
        "library", "accept", draft["id"], "--entry", str(entry), "--approver", "Ada"
    )
    assert accepted.returncode == 0, accepted.stderr
    assert f"accepted {draft['id']} as short-lines@1.0.0" in accepted.stdout
    shown = gate_stack.cli("library", "show", "short-lines", "--json")
    origin = json.loads(shown.stdout)["origin"]
    assert origin == (
        f"{draft['id']}: handover-rejected in run add-text-helpers/{run.run_id}, accepted by Ada"
    )
    again = gate_stack.cli("library", "accept", draft["id"], "--entry", str(entry))
    assert again.returncode == 2
    assert "was already accepted as short-lines@1.0.0" in again.stderr
