"""Role prompts and the repair loop, against an in-memory session (no codex)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import pytest

from agents import (
    CodexSession,
    ExecCommandEnd,
    Turn,
    find_marker,
    render_marker,
    run_builder,
    run_planner,
    run_reviewer,
    run_tester,
)
from agents.roles import MAX_DIFF_CHARS
from orchestrator.exceptions import AgentOutputError
from schemas import CodexServerConfig, TaskSpec, TestReport, TokenUsage

pytestmark = pytest.mark.anyio

PLAN = {"summary": "s", "subtasks": [{"id": "a", "title": "A"}]}


class FakeSession:
    """Answers each call with the next canned text; records what it was asked."""

    def __init__(self, *answers: str, events: list[Any] | None = None) -> None:
        self.config = CodexServerConfig.model_validate(
            {"provider": {"base_url": "http://127.0.0.1:9/v1"}}
        )
        self.answers = list(answers)
        self.events = events or []
        self.calls: list[dict[str, Any]] = []

    async def start(self, prompt: str, **options: Any) -> Turn:
        self.calls.append({"tool": "codex", "prompt": prompt, **options})
        return self._turn()

    async def reply(self, thread_id: str, prompt: str, **options: Any) -> Turn:
        self.calls.append({"tool": "codex-reply", "thread": thread_id, "prompt": prompt})
        return self._turn()

    @property
    def session(self) -> CodexSession:
        """This fake, typed as the session the roles take."""
        return cast("CodexSession", self)

    def _turn(self) -> Turn:
        return Turn(
            thread_id="thread-1",
            text=self.answers.pop(0),
            commands=[],
            patches=[],
            tokens=TokenUsage(input_tokens=10, total_tokens=10),
            duration_ms=5,
            events=list(self.events),
        )


def two_subtask_spec() -> TaskSpec:
    return TaskSpec.model_validate(
        {
            "id": "demo",
            "title": "Demo",
            "goal": "Do two things.",
            "target": {"repo": "."},
            "subtasks": [
                {"id": "first-thing", "title": "The first thing", "acceptance": ["one"]},
                {"id": "second-thing", "title": "The second thing", "acceptance": ["two"]},
            ],
        }
    )


async def test_a_builder_prompt_carries_exactly_one_subtask(tmp_path: Path) -> None:
    spec = two_subtask_spec()
    assert spec.subtasks is not None
    session = FakeSession(json.dumps({"subtask_id": "first-thing", "summary": "done"}))

    outcome = await run_builder(session.session, spec, spec.subtasks[0], worktree=tmp_path)

    prompt = session.calls[0]["prompt"]
    assert find_marker(prompt) == {"role": "builder", "task": "demo", "subtask": "first-thing"}
    assert "Your subtask: first-thing (The first thing)" in prompt
    assert "- one" in prompt
    assert "second-thing" not in prompt and "The second thing" not in prompt
    assert session.calls[0]["cwd"] == tmp_path
    assert session.calls[0]["sandbox"] == "workspace-write"
    assert outcome.output.subtask_id == "first-thing"
    assert not outcome.repaired


async def test_context_is_appended_and_leaves_the_marker_alone(tmp_path: Path) -> None:
    plain, noted = FakeSession(json.dumps(PLAN)), FakeSession(json.dumps(PLAN))
    spec = two_subtask_spec()

    first = await run_planner(plain.session, spec, repo=tmp_path)
    second = await run_planner(noted.session, spec, repo=tmp_path, context="Redone after a crash.")

    without, with_note = plain.calls[0]["prompt"], noted.calls[0]["prompt"]
    assert find_marker(without) == find_marker(with_note) == {"role": "planner", "task": "demo"}
    assert with_note.startswith(render_marker({"role": "planner", "task": "demo"}))
    assert with_note.rstrip().endswith("## Note from the orchestrator\n\nRedone after a crash.")
    assert "Note from the orchestrator" not in without
    assert first.prompt_sha256 != second.prompt_sha256
    assert plain.calls[0]["sandbox"] == "read-only"


async def test_a_repair_asks_once_on_the_same_thread_with_the_problem(tmp_path: Path) -> None:
    session = FakeSession("not json at all", "```json\n" + json.dumps(PLAN) + "\n```")

    outcome = await run_planner(session.session, two_subtask_spec(), repo=tmp_path)

    repair = session.calls[1]
    assert repair["tool"] == "codex-reply" and repair["thread"] == "thread-1"
    assert find_marker(repair["prompt"]) == {"role": "planner", "task": "demo", "kind": "repair"}
    assert "holds no JSON object" in repair["prompt"]
    assert '"subtasks"' in repair["prompt"]  # the schema again
    assert outcome.repaired and outcome.tokens.input_tokens == 20
    assert outcome.duration_ms == 10


async def test_an_answer_invalid_twice_is_an_output_error_without_the_payload(
    tmp_path: Path,
) -> None:
    secret_looking = json.dumps({"summary": "sk-" + "a" * 30, "subtasks": []})
    session = FakeSession(secret_looking, secret_looking)

    with pytest.raises(AgentOutputError) as caught:
        await run_planner(session.session, two_subtask_spec(), repo=tmp_path)

    assert caught.value.role == "planner"
    assert "subtasks" in str(caught.value)
    assert "sk-" not in str(caught.value)
    assert len(session.calls) == 2


async def test_the_review_prompt_holds_the_diff_and_the_test_result(tmp_path: Path) -> None:
    verdict = {"verdict": "request_changes", "reasons": ["too long"]}
    session = FakeSession(json.dumps(verdict))
    report = TestReport(command="make test", exit_code=1, passed=False, tests_failed=2)
    diff = "diff --git a/x b/x\n" + "+x\n" * (MAX_DIFF_CHARS // 3)

    outcome = await run_reviewer(
        session.session,
        two_subtask_spec(),
        repo=tmp_path,
        diff=diff,
        test_report=report,
    )

    prompt = session.calls[0]["prompt"]
    assert "`make test` FAILED (exit code 1; 0 passed, 2 failed" in prompt
    assert "diff --git a/x b/x" in prompt
    assert f"(diff cut at {MAX_DIFF_CHARS} characters)" in prompt
    assert session.calls[0]["sandbox"] == "read-only"
    assert outcome.output.reasons == ["too long"]


async def test_the_tester_report_comes_from_the_command_not_the_answer(tmp_path: Path) -> None:
    run = ExecCommandEnd(
        type="exec_command_end",
        call_id="c1",
        command=["/bin/bash", "-c", "python  -m pytest -q"],
        exit_code=1,
        output="..F\nFAILED tests/test_x.py::test_y\n1 failed, 2 passed, 1 skipped in 0.03s\n",
    )
    session = FakeSession(json.dumps({"summary": "all green!", "passed": True}), events=[run])
    spec = two_subtask_spec()

    outcome = await run_tester(session.session, spec, repo=tmp_path)

    report = outcome.output
    assert (report.passed, report.exit_code) == (False, 1)
    assert (report.tests_passed, report.tests_failed, report.tests_skipped) == (2, 1, 1)
    assert report.summary == "1 failed, 2 passed, 1 skipped in 0.03s"
    assert "    python -m pytest -q" in session.calls[0]["prompt"]
