"""Builders shared by the cloud sync tests: valid manifests, runs, and recorded sleeps."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

import httpx

from orchestrator import AuditLog, Redactor, Workspace
from orchestrator.runs_api import Backoff, RunsApiClient
from schemas import (
    AgentRole,
    AgentStep,
    Approval,
    ArtifactRecord,
    Channel,
    Decision,
    Gate,
    PhaseRecord,
    Phases,
    RunManifest,
    RunStatus,
    StepStatus,
    TokenUsage,
    utc_now,
)
from tests.conftest import sample_manifest

FAST_BACKOFF = Backoff(base=0.01, factor=2.0, max_delay=0.05)
_run_numbers = itertools.count(1)


class Sleeps(list[float]):
    """A ``sleep`` that records how long it was asked to wait, and returns at once."""

    def __call__(self, seconds: float, /) -> None:
        self.append(seconds)


def make_manifest(
    task_id: str = "demo-task",
    run_id: str | None = None,
    *,
    status: RunStatus = RunStatus.SUCCEEDED,
) -> RunManifest:
    """A valid manifest of a run (finished by default) with an approval, an artifact
    and token usage in two phases."""
    run_id = run_id or f"20261124T120000Z-{next(_run_numbers):06d}"
    manifest = sample_manifest(task_id, run_id)
    now = utc_now()
    manifest.status = status
    manifest.finished_at = now if status.finished else None
    manifest.phases = Phases(
        plan=PhaseRecord(status=StepStatus.SUCCEEDED, steps=[_step("plan", 100, 20)]),
        review=PhaseRecord(status=StepStatus.SUCCEEDED, steps=[_step("review", 50, 5)]),
    )
    manifest.approvals = [
        Approval(
            id="plan",
            gate=Gate.PLAN,
            shown="# Plan",
            shown_sha256="b" * 64,
            requested_at=now,
            timeout_seconds=60,
            decided_at=now,
            decision=Decision.APPROVE,
            approver="ada",
            channel=Channel.CLI,
        )
    ]
    artifact = ArtifactRecord(name="plan.json", sha256="c" * 64, size=42, created_at=now)
    manifest.artifacts = [artifact]
    return manifest


def _step(step_id: str, input_tokens: int, output_tokens: int) -> AgentStep:
    role = AgentRole.PLANNER if step_id == "plan" else AgentRole.REVIEWER
    tokens = TokenUsage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=input_tokens + output_tokens,
    )
    return AgentStep(id=step_id, role=role, status=StepStatus.SUCCEEDED, tokens=tokens)


def create_run(workspace: Workspace, task_id: str = "demo-task", **options: object) -> RunManifest:
    """Create a run through the run store; returns its manifest as written."""
    manifest = make_manifest(task_id, **options)
    workspace.store.create(manifest)
    return workspace.store.read(manifest.task_id, manifest.run_id)


Handler = Callable[[httpx.Request], httpx.Response]


def mock_client(
    handler: Handler,
    *,
    token: str,
    audit: AuditLog | None = None,
    redactor: Redactor | None = None,
    sleep: Sleeps | None = None,
    **options: object,
) -> RunsApiClient:
    """A client whose requests go to ``handler`` (``httpx.MockTransport``)."""
    options.setdefault("backoff", FAST_BACKOFF)
    return RunsApiClient(
        "http://runs.test/api",
        "ws-test",
        token,
        transport=httpx.MockTransport(handler),
        sleep=sleep if sleep is not None else Sleeps(),
        audit=audit,
        redactor=redactor,
        **options,
    )


def sync_attempt_lines(audit: AuditLog) -> list[dict[str, Any]]:
    """The ``sync.attempt`` audit lines, as dicts, in order."""
    events = [event for event in audit.read() if event.event == "sync.attempt"]
    return [json.loads(event.model_dump_json()) for event in events]
