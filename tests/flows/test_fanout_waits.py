"""The manager waiting for a subtask's deployment run: what it does with each end.

Fast, without a server: the Prefect API is played by :class:`FakeRuns`, whose runs go
through the states a test gives them (the first one is the state found at dispatch).
The integration test (tests/deploy/test_fanout.py) kills a real worker.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from prefect.client.schemas.objects import FlowRun, State, StateType

import flows._fanout as fanout
from agents.fanout import dispatch_key, subtask_job
from agents.steps import build_step_id, subtask_branch
from orchestrator.exceptions import SubtaskRunError
from orchestrator.lifecycle import start_run
from orchestrator.settings import Settings
from orchestrator.workspace import Workspace
from schemas import (
    AgentRole,
    AgentStep,
    BuiltBy,
    RunManifest,
    SubtaskBuild,
    SubtaskJob,
    SubtaskRecord,
)
from tests.helpers.repos import task_beside_repo

pytestmark = pytest.mark.anyio

TASK = """\
id: demo
title: Demo
goal: Add a file.
target: {repo: repo, test_command: "true"}
subtasks:
  - {id: one, title: First file}
execution: {parallel: true, max_parallel: 2}
"""
QUEUES = ["worker-1", "worker-2"]
BUILD = SubtaskBuild(
    subtask=SubtaskRecord(id="one", title="First file"),
    step=AgentStep(id=build_step_id("one"), role=AgentRole.BUILDER),
    report="{}",
    diff="",
    built_by=BuiltBy(flow_run_id="f", worker="subtask-worker-2", home="/elsewhere"),
)
S, R, C = StateType.SCHEDULED, StateType.RUNNING, StateType.CRASHED


class FakeRuns:
    """Deployment runs by idempotency key: each goes through ``plans[key]`` as it is read."""

    def __init__(self, plans: dict[str, list[StateType]]) -> None:
        self.plans = plans
        self.started: list[tuple[str, str | None]] = []
        self.runs: dict[UUID, tuple[FlowRun, Iterator[StateType]]] = {}

    async def arun_deployment(
        self, name: str, *, idempotency_key: str, work_queue_name: str | None, **_: Any
    ) -> FlowRun:
        self.started.append((idempotency_key, work_queue_name))
        states = iter(self.plans[idempotency_key])
        run = FlowRun(flow_id=uuid4(), name=idempotency_key, state=state(next(states)))
        self.runs[run.id] = (run, states)
        return run

    async def read_flow_run(self, flow_run_id: UUID) -> FlowRun:
        run, states = self.runs[flow_run_id]
        then = next(states, None)
        if then is not None:
            run = run.model_copy(update={"state": state(then)})
            self.runs[flow_run_id] = (run, states)
        return run


def state(kind: StateType) -> State:
    data = BUILD.model_dump(mode="json") if kind is StateType.COMPLETED else None
    return State(type=kind, name=kind.value.title(), data=data)


@pytest.fixture
def job(tmp_path: Path) -> SubtaskJob:
    workspace = Workspace.open(Settings(home=tmp_path / "manager"))
    handle = start_run(workspace, task_file=task_beside_repo(tmp_path, TASK), env="dev")

    def planned(m: RunManifest) -> None:
        m.subtasks = [
            SubtaskRecord(
                id="one",
                title="First file",
                step_id=build_step_id("one"),
                branch=subtask_branch(handle, "one"),
            )
        ]

    handle.update(planned, event="test.planned")
    return subtask_job(handle, "one", remote="r", base_ref="b", codex_block="c", vault_block="v")


def played(monkeypatch: pytest.MonkeyPatch, plans: dict[str, list[StateType]]) -> FakeRuns:
    runs = FakeRuns(plans)

    @asynccontextmanager
    async def client() -> AsyncIterator[FakeRuns]:
        yield runs

    monkeypatch.setattr(fanout, "arun_deployment", runs.arun_deployment)
    monkeypatch.setattr(fanout, "get_client", client)
    monkeypatch.setattr(fanout, "POLL_SECONDS", 0)
    monkeypatch.setattr(fanout, "run_logger", lambda: logging.getLogger("test"))
    return runs


async def test_a_build_that_crashes_while_the_manager_waits_is_built_again_on_the_next_queue(
    monkeypatch: pytest.MonkeyPatch, job: SubtaskJob
) -> None:
    key = dispatch_key(job)
    runs = played(monkeypatch, {key: [S, R, R, C], f"{key}#2": [S, R, StateType.COMPLETED]})

    build = await fanout.dispatched_build("d/d", job, queues=QUEUES, index=0)

    assert build == BUILD
    assert runs.started == [(key, "worker-1"), (f"{key}#2", "worker-2")]


async def test_a_build_found_completed_is_read_and_never_started_again(
    monkeypatch: pytest.MonkeyPatch, job: SubtaskJob
) -> None:
    runs = played(monkeypatch, {dispatch_key(job): [StateType.COMPLETED]})

    assert await fanout.dispatched_build("d/d", job, queues=QUEUES, index=1) == BUILD
    assert runs.started == [(dispatch_key(job), "worker-2")]


@pytest.mark.parametrize(
    ("ends", "started"),
    [([StateType.FAILED], 1), ([C, C, C], fanout.RERUNS + 1)],
    ids=["failed-is-not-rebuilt", "crashed-too-often"],
)
async def test_a_failed_build_or_one_crashing_more_than_the_reruns_fails_the_phase(
    monkeypatch: pytest.MonkeyPatch, job: SubtaskJob, ends: list[StateType], started: int
) -> None:
    key = dispatch_key(job)
    keys = [key, f"{key}#2", f"{key}#3"]
    runs = played(monkeypatch, {k: [R, end] for k, end in zip(keys, ends, strict=False)})

    with pytest.raises(SubtaskRunError, match=f"subtask one of demo/{job.run_id}"):
        await fanout.dispatched_build("d/d", job, queues=QUEUES, index=0)

    assert [k for k, _ in runs.started] == keys[:started]
