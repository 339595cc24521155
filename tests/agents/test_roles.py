"""The four roles: the sample tasks end to end, repairs, and the tester's real results."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from agents import (
    AgentSession,
    RoleOutcome,
    run_builder,
    run_planner,
    run_reviewer,
    run_tester,
)
from agents.backend import new_session
from devstack.replay import ReplayServer, replay_config
from orchestrator.exceptions import AgentOutputError
from orchestrator.taskspec import load_task_spec
from schemas import AgentBackend, AgentRole, BuildReport, SubtaskSpec, TaskSpec, Verdict

from .conftest import EXAMPLES, FAILING_FIXTURES, SAMPLE_FIXTURES, TEST_FIXTURES, git

pytestmark = [pytest.mark.anyio, pytest.mark.integration, pytest.mark.timeout(90)]

REDO = "This step is being redone after a crash; the worktree was reset."


def task(name: str) -> TaskSpec:
    return load_task_spec(EXAMPLES / "tasks" / f"{name}.yaml")


def spec(task_id: str, **fields: object) -> TaskSpec:
    return TaskSpec.model_validate(
        {"id": task_id, "title": task_id, "goal": "Test the roles.", "target": {"repo": "."}}
        | fields
    )


async def build_all(
    session: AgentSession, spec: TaskSpec, subtasks: list[SubtaskSpec], repo: Path
) -> dict[str, RoleOutcome[BuildReport]]:
    """One builder per subtask, concurrently, each in its own worktree and branch."""
    outcomes: dict[str, RoleOutcome[BuildReport]] = {}

    async def build(subtask: SubtaskSpec) -> None:
        worktree = repo.parent / f"worktree-{subtask.id}"
        git("worktree", "add", "-q", "-b", f"subtask/{subtask.id}", str(worktree), cwd=repo)
        outcomes[subtask.id] = await run_builder(session, spec, subtask, worktree=worktree)
        git("add", "-A", cwd=worktree)
        git("commit", "-q", "-m", subtask.title, cwd=worktree)

    async with anyio.create_task_group() as tg:
        for subtask in subtasks:
            tg.start_soon(build, subtask)
    return outcomes


@pytest.mark.parametrize(
    ("task_name", "fixtures", "passed", "counts", "verdict"),
    [
        ("add-text-helpers", SAMPLE_FIXTURES, True, (20, 0), Verdict.APPROVE),
        ("add-word-stats", SAMPLE_FIXTURES, True, (7, 0), Verdict.APPROVE),
        ("add-text-helpers", FAILING_FIXTURES, False, (6, 1), Verdict.REQUEST_CHANGES),
        ("add-word-stats", FAILING_FIXTURES, False, (5, 1), Verdict.REQUEST_CHANGES),
    ],
)
async def test_a_sample_task_runs_through_all_four_roles(
    backend: AgentBackend,
    replay_factory: Callable[..., ReplayServer],
    sample_repo: Path,
    task_name: str,
    fixtures: Path,
    passed: bool,
    counts: tuple[int, int],
    verdict: Verdict,
) -> None:
    server = replay_factory(fixtures)
    spec = task(task_name)
    async with new_session(replay_config(server.url, backend=backend)) as session:
        plan = await run_planner(session, spec, repo=sample_repo, context=REDO)
        subtasks = spec.subtasks or plan.output.subtasks
        builds = await build_all(session, spec, subtasks, sample_repo)
        base = git("rev-parse", "HEAD", cwd=sample_repo).strip()
        for subtask in subtasks:  # a real 3-way merge from the second branch on
            git("merge", "-q", "--no-ff", "--no-edit", f"subtask/{subtask.id}", cwd=sample_repo)
        tested = await run_tester(session, spec, repo=sample_repo)
        change = git("diff", base, "HEAD", cwd=sample_repo)
        review = await run_reviewer(
            session, spec, repo=sample_repo, diff=change, test_report=tested.output
        )

    assert [s.id for s in plan.output.subtasks] == [s.id for s in subtasks]
    assert set(builds) == {s.id for s in subtasks}
    for subtask in subtasks:
        build = builds[subtask.id]
        assert build.output.subtask_id == subtask.id
        assert build.patches and all(p.success for p in build.patches)
        assert set(build.patches[0].files) <= set(subtask.files) | {"textkit/__init__.py"}
        assert build.tokens.total_tokens > 0
    leftovers = git("status", "--porcelain", cwd=sample_repo).splitlines()
    assert leftovers == []  # no stray files: everything the builders wrote is committed
    report = tested.output
    assert (report.passed, report.exit_code == 0) == (passed, passed)
    assert (report.tests_passed, report.tests_failed) == counts
    assert report.command == "python -m pytest -q"
    assert tested.commands[0].exit_code == report.exit_code
    assert review.output.verdict is verdict
    requests = server.requests()
    assert all(r["status"] == 200 for r in requests)
    assert {r["role"] for r in requests} == {"planner", "builder", "tester", "reviewer"}


async def test_the_merged_package_exports_every_helper(
    backend: AgentBackend, replay_factory: Callable[..., ReplayServer], sample_repo: Path
) -> None:
    server = replay_factory(SAMPLE_FIXTURES)
    spec = task("add-word-stats")
    assert spec.subtasks is not None
    async with new_session(replay_config(server.url, backend=backend)) as session:
        await build_all(session, spec, spec.subtasks, sample_repo)
    first, second = (f"subtask/{s.id}" for s in spec.subtasks)
    # A 3-way merge of the two branches (base: main); git fails on any conflict.
    merged = git("merge-tree", "--write-tree", first, second, cwd=sample_repo)
    init = git("show", f"{merged.split()[0]}:textkit/__init__.py", cwd=sample_repo)
    assert "from .stats import longest_word as longest_word" in init
    assert "from .words import unique_words as unique_words" in init


async def test_an_invalid_plan_gets_one_repair_on_the_same_thread(
    backend: AgentBackend, replay_factory: Callable[..., ReplayServer], git_repo: Path
) -> None:
    server = replay_factory(TEST_FIXTURES / "roles")
    async with new_session(replay_config(server.url, backend=backend)) as session:
        outcome = await run_planner(session, spec("needs-repair"), repo=git_repo)

    assert outcome.repaired
    assert outcome.role is AgentRole.PLANNER
    assert [s.id for s in outcome.output.subtasks] == ["only"]
    assert len(outcome.turns) == 2
    assert {t.thread_id for t in outcome.turns} == {outcome.thread_id}
    assert outcome.tokens.input_tokens == 2 * 1200
    assert outcome.duration_ms == sum(t.duration_ms for t in outcome.turns)
    assert [r["script"] for r in server.requests()] == ["plan-repaired", "plan-repaired-repair"]
    assert server.requests()[1]["marker"]["kind"] == "repair"


async def test_a_plan_still_invalid_after_the_repair_is_an_output_error(
    backend: AgentBackend, replay_factory: Callable[..., ReplayServer], git_repo: Path
) -> None:
    server = replay_factory(TEST_FIXTURES / "roles")
    async with new_session(replay_config(server.url, backend=backend)) as session:
        with pytest.raises(AgentOutputError) as caught:
            await run_planner(session, spec("hopeless"), repo=git_repo)

    assert caught.value.role == "planner"
    assert "subtasks" in str(caught.value)
    assert "still invalid after one repair" in str(caught.value)
    assert len(server.requests()) == 2  # exactly one repair request


async def test_a_builder_reporting_another_subtask_is_asked_again(
    backend: AgentBackend, replay_factory: Callable[..., ReplayServer], git_repo: Path
) -> None:
    server = replay_factory(TEST_FIXTURES / "roles")
    subtask = SubtaskSpec(id="only", title="Do the one thing", files=["only.py"])
    async with new_session(replay_config(server.url, backend=backend)) as session:
        outcome = await run_builder(session, spec("needs-repair"), subtask, worktree=git_repo)
    assert outcome.repaired
    assert outcome.output.subtask_id == "only"


async def test_the_tester_reports_the_real_exit_code_not_its_claim(
    backend: AgentBackend, replay_factory: Callable[..., ReplayServer], sample_repo: Path
) -> None:
    (sample_repo / "tests" / "test_broken.py").write_text("def test_broken():\n    assert 1 == 2\n")
    server = replay_factory(TEST_FIXTURES / "roles")
    async with new_session(replay_config(server.url, backend=backend)) as session:
        outcome = await run_tester(session, spec("liar"), repo=sample_repo)

    report = outcome.output
    assert (report.passed, report.exit_code) == (False, 1)
    assert (report.tests_passed, report.tests_failed) == (2, 1)
    assert report.summary.startswith("1 failed, 2 passed")
    assert not outcome.repaired


async def test_a_tester_that_runs_nothing_is_asked_again_then_refused(
    backend: AgentBackend, replay_factory: Callable[..., ReplayServer], sample_repo: Path
) -> None:
    server = replay_factory(TEST_FIXTURES / "roles")
    async with new_session(replay_config(server.url, backend=backend)) as session:
        late = await run_tester(session, spec("late"), repo=sample_repo)
        with pytest.raises(AgentOutputError, match="was not run") as caught:
            await run_tester(session, spec("lazy"), repo=sample_repo)

    assert late.repaired
    assert (late.output.passed, late.output.tests_passed) == (True, 2)
    assert caught.value.role == "tester"


async def test_roles_forward_events_to_the_subscriber(
    backend: AgentBackend, replay_factory: Callable[..., ReplayServer], sample_repo: Path
) -> None:
    server = replay_factory(SAMPLE_FIXTURES)
    seen: list[str] = []

    async def on_event(event: object) -> None:
        seen.append(type(event).__name__)

    async with new_session(replay_config(server.url, backend=backend)) as session:
        await run_tester(session, task("add-text-helpers"), repo=sample_repo, on_event=on_event)
    assert "ExecCommandEnd" in seen
    assert "TaskComplete" in seen
