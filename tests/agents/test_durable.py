"""Durable threads on app-server (real codex + replay): a build step interrupted mid-turn
continues its thread after a resume; without its CODEX_HOME it is redone from the start.

The interruption is the step's task cancelled while codex waits for the model (the
orchestrator dying leaves the manifest as it is, the step ``running``, and the step's
CODEX_HOME kept); the SIGKILL of a whole pipeline is in ``tests/flows/test_resume.py``.
The replay provider's request log shows which model requests each attempt made.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from agents.approvals import PolicyApprover
from agents.backend import new_session
from agents.durable import kept_codex_home, step_codex_home
from agents.events import CodexEvent, EventCallback, PatchApplyEnd
from agents.steps import build_step, build_step_id, plan_step
from devstack.replay import ReplayServer, replay_config
from orchestrator.lifecycle import RunHandle, start_run
from orchestrator.workspace import Workspace
from schemas import AgentStep, CodexServerConfig, CommandPolicy, ModelProvider, StepStatus
from tests.helpers.canary import scan_paths_for

from .conftest import EXAMPLES, SAMPLE_FIXTURES

pytestmark = [pytest.mark.anyio, pytest.mark.integration, pytest.mark.timeout(180)]

SUBTASK = "slugify"
STEP = build_step_id(SUBTASK)
SCRIPT = "build-slugify"  # patch, exec (its tests), json: three model requests
KEY_VAR = "REPLAY_API_KEY"
CANARY = "sk-canary-durable-thread-0f9e8d7c6b"
FILES = ["tests/test_slugify.py", "textkit/__init__.py", "textkit/slugify.py"]


@pytest.fixture
def replay(replay_factory: Callable[..., ReplayServer]) -> ReplayServer:
    return replay_factory(SAMPLE_FIXTURES, latency=0.5)  # slow enough to interrupt


@pytest.fixture
def config(replay: ReplayServer) -> CodexServerConfig:
    """app-server settings with an API key variable, so a canary key reaches codex."""
    provider = ModelProvider(name="replay", base_url=replay.url, env_key=KEY_VAR)
    return replay_config(replay.url, backend="app-server", call_timeout_seconds=60).model_copy(
        update={"provider": provider}
    )


@pytest.fixture
def run(workspace: Workspace, sample_repo: Path, tmp_path: Path) -> RunHandle:
    task = (EXAMPLES / "tasks" / "add-text-helpers.yaml").read_text()
    task_file = tmp_path / "task.yaml"
    task_file.write_text(task.replace("../sample-repo", str(sample_repo)))
    return start_run(workspace, task_file=task_file, env="dev")


async def build_on_kept_home(
    run: RunHandle, config: CodexServerConfig, on_event: EventCallback | None = None
) -> None:
    """The build step as a flow's agent task runs it on app-server."""
    approver = PolicyApprover(CommandPolicy.PATCHES_IN_WORKSPACE, workspace=run.work_dir)
    with kept_codex_home(run, STEP) as home:
        env = {KEY_VAR: CANARY}
        async with new_session(config, env=env, approver=approver, codex_home=home) as session:
            await build_step(run, session, SUBTASK, on_event=on_event)


def build_requests(replay: ReplayServer) -> list[int]:
    """The script step each request of the builder was answered with, in order."""
    return [r["step"] for r in replay.requests() if r.get("script") == SCRIPT]


async def interrupted_after_the_patch(
    run: RunHandle, config: CodexServerConfig, replay: ReplayServer
) -> AgentStep:
    """Build until the patch is applied (the next model answer is then awaited), then
    stop; the step's record as the interruption left it."""
    patched = anyio.Event()

    async def on_event(event: CodexEvent) -> None:
        if isinstance(event, PatchApplyEnd):
            patched.set()

    async with anyio.create_task_group() as group:
        group.start_soon(build_on_kept_home, run, config, on_event)
        with anyio.fail_after(90):
            await patched.wait()
        group.cancel_scope.cancel()
    assert build_requests(replay)[:1] == [0]
    step = run.read().step(STEP)
    assert step is not None and step.status is StepStatus.RUNNING
    assert step.thread_id, "the thread id is recorded as soon as the thread starts"
    return step


def committed_files(run: RunHandle) -> list[str]:
    record = run.read().subtask(SUBTASK)
    assert record is not None and record.commit
    shown = subprocess.run(
        ["git", "show", "--name-only", "--format=", record.commit],
        cwd=run.read().task.repo_path,
        capture_output=True,
        text=True,
        check=True,
    )
    return sorted(shown.stdout.split())


@pytest.fixture
async def planned(run: RunHandle, config: CodexServerConfig) -> RunHandle:
    async with new_session(config, env={KEY_VAR: CANARY}) as session:
        await plan_step(run, session)
    return run


async def test_an_interrupted_build_continues_its_thread_with_fewer_model_requests(
    planned: RunHandle, config: CodexServerConfig, replay: ReplayServer
) -> None:
    run = planned
    step = await interrupted_after_the_patch(run, config, replay)
    home = step_codex_home(run, STEP)
    assert list(home.glob("sessions/**/rollout-*.jsonl")), "the kept home holds the thread"
    assert scan_paths_for(CANARY, [home]) == [], "no credential in the kept CODEX_HOME"
    before = len(build_requests(replay))

    await build_on_kept_home(run, config)

    after = build_requests(replay)[before:]
    assert after and after[0] > 0, f"the continued turn started over: {after}"
    assert len(after) < 3, "a clean redo asks the model for every step of the script"
    done = run.read().step(STEP)
    assert done is not None and done.restart is not None
    assert (done.status, done.attempt, done.thread_id) == (StepStatus.SUCCEEDED, 2, step.thread_id)
    assert done.restart.continued and done.restart.thread_id == step.thread_id
    assert done.restart.reason.startswith("continued: thread")
    assert committed_files(run) == FILES
    assert not home.exists(), "the step's CODEX_HOME is removed when the step ends"


async def test_without_its_codex_home_an_interrupted_build_is_redone_from_the_start(
    planned: RunHandle, config: CodexServerConfig, replay: ReplayServer
) -> None:
    run = planned
    interrupted = await interrupted_after_the_patch(run, config, replay)
    shutil.rmtree(step_codex_home(run, STEP))
    before = len(build_requests(replay))

    await build_on_kept_home(run, config)

    assert build_requests(replay)[before:] == [0, 1, 2], "the whole turn again"
    done = run.read().step(STEP)
    assert done is not None and done.restart is not None
    assert done.status is StepStatus.SUCCEEDED and not done.restart.continued
    assert "its thread could not be resumed" in done.restart.reason
    assert "no rollout found" in done.restart.reason
    assert done.thread_id and done.thread_id != interrupted.thread_id
    assert committed_files(run) == FILES
