"""The resume rule of ``agents/steps.py`` and ``orchestrator/step_records.py``, against an
in-memory codex (no process, no model): which steps a resumed run skips, which it redoes.

- a step recorded ``succeeded`` whose output artifact still has its sha256 is skipped
  (no agent call) and its output reloaded;
- a step left ``running`` (the run was killed during it) is redone on a new thread,
  from a clean worktree, with a note in the prompt;
- a ``succeeded`` step whose artifact is missing or changed is redone;
- a run that failed on an agent error is reopened by ``resume_run`` and its failed
  step redone.

A kill is played by cancelling the step mid-call: like SIGKILL, it leaves the manifest
as it was (the step ``running``), because nothing but an exception records a failure.
The fake counts the calls of each role, so a broken rule fails these tests.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

import anyio
import pytest

from agents import CodexSession
from agents.durable import REDO_NOTE
from agents.steps import (
    PLAN_ARTIFACT,
    build_step,
    merge_step,
    plan_step,
    review_step,
    subtask_branch,
    test_step,
)
from orchestrator.exceptions import AgentServerError
from orchestrator.lifecycle import RunHandle, fail_run, resume_run, start_run
from orchestrator.workspace import Workspace
from schemas import CodexServerConfig, PhaseName, Plan, RunStatus, StepStatus
from tests.helpers.fake_codex import FakeCall, FakeCodex, FakeError
from tests.helpers.repos import git, task_beside_repo

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(20)]

R = TypeVar("R")
CONFIG = CodexServerConfig.model_validate({"provider": {"base_url": "http://127.0.0.1:9/v1"}})
PLAN = {
    "summary": "two helpers",
    "subtasks": [{"id": "alpha", "title": "Add alpha"}, {"id": "beta", "title": "Add beta"}],
}
TASK = """\
id: demo
title: Demo
goal: Add alpha and beta.
target: {repo: repo}
approvals: {plan: auto, handover: auto}
"""


class Team:
    """Plays the four roles; ``hold`` keeps that role's call waiting (to be killed there)."""

    def __init__(self) -> None:
        self.hold: str | None = None
        self.fail: str | None = None
        self.holding = anyio.Event()
        self.found: list[list[str]] = []
        """What each builder call found in its worktree (besides git's own files)."""

    async def __call__(self, call: FakeCall) -> str:
        role = call.marker.get("role")
        if role == "builder":
            return await self._build(call)
        await self._hold_if(role)
        if role == "planner":
            return json.dumps(PLAN)
        if role == "tester":
            await call.run("python -m pytest -q", output="2 passed in 0.01s\n")
            return json.dumps({"summary": "green"})
        return json.dumps({"verdict": "approve", "reasons": ["small and tested"]})

    async def _build(self, call: FakeCall) -> str:
        assert call.cwd is not None
        if self.fail == "builder":
            raise FakeError("We're currently experiencing high demand (model outage)")
        subtask = call.marker["subtask"]
        self.found.append(sorted(p.name for p in call.cwd.iterdir() if p.name != ".git"))
        await call.patch({f"{subtask}.py": f"def {subtask}():\n    return 1\n"})
        await self._hold_if("builder")
        files = [f"{subtask}.py"]
        return json.dumps({"subtask_id": subtask, "summary": "built", "files_changed": files})

    async def _hold_if(self, role: str | None) -> None:
        if role == self.hold:
            self.holding.set()
            await anyio.sleep_forever()


@pytest.fixture
def team() -> Team:
    return Team()


@pytest.fixture
def fake(team: Team) -> FakeCodex:
    return FakeCodex(team)


@pytest.fixture
def run(workspace: Workspace, tmp_path: Path) -> RunHandle:
    """A started run of a task without subtasks (the planner splits it) on a git repo."""
    return start_run(workspace, task_file=task_beside_repo(tmp_path, TASK), env="dev")


@asynccontextmanager
async def session(fake: FakeCodex) -> AsyncIterator[CodexSession]:
    async with CodexSession(CONFIG, streams=fake.streams) as opened:
        yield opened


async def step(fake: FakeCodex, call: Callable[[CodexSession], Awaitable[R]]) -> R:
    """One step on a session of its own, as a flow's agent task runs it."""
    async with session(fake) as opened:
        return await call(opened)


async def killed_during(
    fake: FakeCodex, team: Team, role: str, call: Callable[..., object]
) -> None:
    """Run ``call`` until ``role``'s agent is under way, then kill it (cancel the step)."""
    team.hold = role
    async with anyio.create_task_group() as tg:

        async def the_step() -> None:
            async with session(fake) as opened:
                await call(opened)

        tg.start_soon(the_step)
        with anyio.fail_after(5):
            await team.holding.wait()
        tg.cancel_scope.cancel()
    team.hold, team.holding = None, anyio.Event()


def step_of(handle: RunHandle, step_id: str) -> tuple[StepStatus, int]:
    recorded = handle.read().step(step_id)
    assert recorded is not None
    return recorded.status, recorded.attempt


# -- skipping ----------------------------------------------------------------------


async def test_a_succeeded_step_with_an_intact_artifact_is_skipped(
    run: RunHandle, fake: FakeCodex
) -> None:
    first = await step(fake, lambda s: plan_step(run, s))
    again = await step(fake, lambda s: plan_step(run, s))

    assert again == first
    assert len(fake.calls_of("planner")) == 1, "the done step must not call the agent again"
    assert step_of(run, "plan") == (StepStatus.SUCCEEDED, 1)


async def test_a_finished_pipeline_run_again_makes_no_agent_call(
    run: RunHandle, fake: FakeCodex
) -> None:
    async def everything() -> None:
        await step(fake, lambda s: plan_step(run, s))
        for subtask in ("alpha", "beta"):
            await step(fake, lambda s, subtask=subtask: build_step(run, s, subtask))
        merge_step(run)
        await step(fake, lambda s: test_step(run, s))
        await step(fake, lambda s: review_step(run, s))

    await everything()
    calls = len(fake.calls)
    before = run.manifest_path.read_bytes()
    await everything()

    assert calls == 5  # planner, two builders, tester, reviewer
    assert len(fake.calls) == calls
    assert run.manifest_path.read_bytes() == before, "a skipped step writes nothing"


# -- redoing -----------------------------------------------------------------------


async def test_a_step_left_running_is_redone_with_a_note_after_resume(
    run: RunHandle, fake: FakeCodex, team: Team
) -> None:
    await killed_during(fake, team, "planner", lambda s: plan_step(run, s))
    assert step_of(run, "plan") == (StepStatus.RUNNING, 1)

    handle = resume_run(run.workspace, run.run_id, flow_run_id="flow-2")
    plan = await step(fake, lambda s: plan_step(handle, s))

    first, second = fake.calls_of("planner")
    assert REDO_NOTE not in first.prompt and REDO_NOTE in second.prompt
    assert second.thread_id != first.thread_id, "a redo starts a new thread"
    assert [s.id for s in plan.subtasks] == ["alpha", "beta"]
    manifest = handle.read()
    assert step_of(handle, "plan") == (StepStatus.SUCCEEDED, 2)
    assert (manifest.status, manifest.flow_run_id) == (RunStatus.RUNNING, "flow-2")


async def test_a_build_left_running_is_redone_from_a_clean_worktree(
    run: RunHandle, fake: FakeCodex, team: Team
) -> None:
    await step(fake, lambda s: plan_step(run, s))
    await killed_during(fake, team, "builder", lambda s: build_step(run, s, "alpha"))
    worktree = run.work_dir / "subtasks" / "alpha"
    assert (worktree / "alpha.py").exists(), "the killed builder had started editing"

    record = await step(fake, lambda s: build_step(run, s, "alpha"))

    assert team.found == [["README.md"], ["README.md"]], "the redo found a clean worktree"
    builds = fake.calls_of("builder")
    assert len(builds) == 2 and REDO_NOTE in builds[1].prompt
    assert (record.status, record.builder_calls) == (StepStatus.SUCCEEDED, 2)
    repo = Path(run.read().task.repo_path)
    assert record.commit == git(repo, "rev-parse", subtask_branch(run, "alpha"))
    assert git(repo, "show", "--name-only", "--format=", record.commit or "") == "alpha.py"
    assert step_of(run, "build-alpha") == (StepStatus.SUCCEEDED, 2)


async def test_a_run_failed_by_an_agent_error_is_continued_by_resume(
    run: RunHandle, fake: FakeCodex, team: Team
) -> None:
    await step(fake, lambda s: plan_step(run, s))
    team.fail = "builder"
    with pytest.raises(AgentServerError, match="model outage"):
        await step(fake, lambda s: build_step(run, s, "alpha"))
    fail_run(  # as the pipeline records an error that ended the run
        run,
        "codex codex call failed: model outage",
        phase=PhaseName.BUILD,
        error_type="AgentServerError",
    )
    team.fail = None

    handle = resume_run(run.workspace, run.run_id)
    record = await step(fake, lambda s: build_step(handle, s, "alpha"))

    assert [len(fake.calls_of(role)) for role in ("planner", "builder")] == [1, 2]
    assert (record.status, record.builder_calls) == (StepStatus.SUCCEEDED, 2)
    assert handle.read().status is RunStatus.RUNNING
    assert step_of(handle, "build-alpha") == (StepStatus.SUCCEEDED, 2)


@pytest.mark.parametrize("damage", ["changed", "missing"])
async def test_a_succeeded_step_whose_artifact_is_damaged_is_redone(
    run: RunHandle, fake: FakeCodex, damage: str
) -> None:
    await step(fake, lambda s: plan_step(run, s))
    artifact = run.path / PLAN_ARTIFACT
    if damage == "changed":
        artifact.write_text('{"summary": "tampered", "subtasks": []}')
    else:
        artifact.unlink()

    plan = await step(fake, lambda s: plan_step(run, s))

    assert len(fake.calls_of("planner")) == 2
    assert [s.id for s in plan.subtasks] == ["alpha", "beta"]
    assert Plan.model_validate_json(artifact.read_text()) == Plan.model_validate(PLAN)
    assert step_of(run, "plan") == (StepStatus.SUCCEEDED, 2)
    manifest = run.read()
    assert [s.id for s in manifest.subtasks] == ["alpha", "beta"], "subtasks recorded once"


async def test_a_built_subtask_whose_branch_moved_is_rebuilt(
    run: RunHandle, fake: FakeCodex
) -> None:
    await step(fake, lambda s: plan_step(run, s))
    built = await step(fake, lambda s: build_step(run, s, "alpha"))
    repo = Path(run.read().task.repo_path)
    branch = subtask_branch(run, "alpha")
    git(repo, "update-ref", f"refs/heads/{branch}", "main")  # someone reset it

    rebuilt = await step(fake, lambda s: build_step(run, s, "alpha"))

    assert built.commit is not None
    assert len(fake.calls_of("builder")) == 2
    assert (rebuilt.status, rebuilt.builder_calls) == (StepStatus.SUCCEEDED, 2)
    assert git(repo, "rev-parse", branch) == rebuilt.commit
