"""The four roles: planner, builder, tester, reviewer, each one codex call (plus repair).

Each role renders its prompt template, starts a codex thread, and validates the answer
with pydantic. An invalid answer gets exactly one repair request on the same thread
(``codex-reply``); if that answer is invalid too, :class:`AgentOutputError`. The tester's
result never comes from what the model says: pass/fail is the real exit code of the test
command (from its ``exec_command_end`` event) and the counts come from pytest's summary
line in that command's output.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from orchestrator.deterministic import lint_failures
from orchestrator.exceptions import AgentOutputError
from schemas import (
    AgentRole,
    BuildReport,
    CommandRecord,
    PatchRecord,
    Plan,
    ReviewVerdict,
    SandboxMode,
    SubtaskSpec,
    TaskSpec,
    TestReport,
    TokenUsage,
)

from ._outputs import InvalidAnswer, extract_json, parse_pytest_summary
from ._prompts import bullet_list, render, schema_text
from .backend import AgentSession
from .events import EventCallback, ExecCommandEnd
from .turns import Turn

__all__ = [
    "MAX_DIFF_CHARS",
    "RoleOutcome",
    "TesterAnswer",
    "build_test_report",
    "run_builder",
    "run_planner",
    "run_reviewer",
    "run_tester",
]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
M = TypeVar("M", bound=BaseModel)

MAX_DIFF_CHARS = 60_000
"""A longer diff is cut in the reviewer's prompt (the note says so)."""


@dataclass(frozen=True, kw_only=True)
class RoleOutcome(Generic[T_co]):
    """A role's validated output and what its turns did, summed (repair included)."""

    role: AgentRole
    output: T_co
    thread_id: str
    turns: list[Turn]
    commands: list[CommandRecord]
    patches: list[PatchRecord]
    tokens: TokenUsage
    duration_ms: int
    prompt_sha256: str
    repaired: bool


class TesterAnswer(BaseModel):
    """What the tester says; only its summary is used, never its claims."""

    model_config = ConfigDict(extra="ignore")

    summary: str


@dataclass(frozen=True, kw_only=True)
class _Call:
    """One role call: its prompt, where it runs, and how its answer is read."""

    role: AgentRole
    marker: dict[str, str]
    prompt: str
    cwd: Path
    sandbox: SandboxMode
    output_model: type[BaseModel]
    repair_instructions: str = ""
    on_event: EventCallback | None = None


async def run_planner(
    session: AgentSession,
    spec: TaskSpec,
    *,
    repo: Path,
    context: str = "",
    on_event: EventCallback | None = None,
) -> RoleOutcome[Plan]:
    """Ask the planner to split ``spec`` into subtasks; returns the validated plan.

    Raises:
        AgentOutputError: no valid plan even after one repair request.
        AgentServerError, AgentTimeoutError: the codex call failed.
    """
    marker = _marker(AgentRole.PLANNER, spec)
    prompt = render(
        "planner",
        marker=marker,
        context=context,
        task_id=spec.id,
        title=spec.title,
        goal=spec.goal.strip(),
        schema=schema_text(Plan),
    )
    call = _Call(
        role=AgentRole.PLANNER,
        marker=marker,
        prompt=prompt,
        cwd=repo,
        sandbox=_read_only(session),
        output_model=Plan,
        on_event=on_event,
    )
    return await _run(session, call, lambda turns: _validated(Plan, turns[-1]))


async def run_builder(
    session: AgentSession,
    spec: TaskSpec,
    subtask: SubtaskSpec,
    *,
    worktree: Path,
    context: str = "",
    on_event: EventCallback | None = None,
) -> RoleOutcome[BuildReport]:
    """Have one builder do exactly ``subtask`` in ``worktree`` (the one-subtask rule).

    Raises:
        AgentOutputError: no valid build report even after one repair request.
        AgentServerError, AgentTimeoutError: the codex call failed.
    """
    marker = _marker(AgentRole.BUILDER, spec) | {"subtask": subtask.id}
    prompt = render(
        "builder",
        marker=marker,
        context=context,
        task_id=spec.id,
        title=spec.title,
        goal=spec.goal.strip(),
        subtask_id=subtask.id,
        subtask_title=subtask.title,
        acceptance=bullet_list(subtask.acceptance),
        files=", ".join(subtask.files) or "(not given)",
        schema=schema_text(BuildReport),
    )
    call = _Call(
        role=AgentRole.BUILDER,
        marker=marker,
        prompt=prompt,
        cwd=worktree,
        sandbox=session.config.sandbox,
        output_model=BuildReport,
        on_event=on_event,
    )

    def parse(turns: list[Turn]) -> BuildReport:
        report = _validated(BuildReport, turns[-1])
        if report.subtask_id != subtask.id:
            raise InvalidAnswer(
                f"subtask_id is {report.subtask_id!r}; this call builds {subtask.id!r}"
            )
        return report

    return await _run(session, call, parse)


async def run_tester(
    session: AgentSession,
    spec: TaskSpec,
    *,
    repo: Path,
    context: str = "",
    on_event: EventCallback | None = None,
) -> RoleOutcome[TestReport]:
    """Run the target's test command through the tester; the report is from real results.

    ``passed`` and ``exit_code`` are the exit code of the test command as codex ran it;
    the counts are read from pytest's summary line in its output.

    Raises:
        AgentOutputError: the tester did not run the test command, even when asked again.
        AgentServerError, AgentTimeoutError: the codex call failed.
    """
    command = spec.target.test_command
    marker = _marker(AgentRole.TESTER, spec)
    prompt = render(
        "tester",
        marker=marker,
        context=context,
        task_id=spec.id,
        title=spec.title,
        test_command=command,
        schema=schema_text(TesterAnswer),
    )
    call = _Call(
        role=AgentRole.TESTER,
        marker=marker,
        prompt=prompt,
        cwd=repo,
        sandbox=session.config.sandbox,
        output_model=TesterAnswer,
        repair_instructions=f"Run the test command `{command}` in the repository root first.\n",
        on_event=on_event,
    )
    return await _run(session, call, lambda turns: build_test_report(command, turns))


async def run_reviewer(
    session: AgentSession,
    spec: TaskSpec,
    *,
    repo: Path,
    diff: str,
    test_report: TestReport,
    context: str = "",
    on_event: EventCallback | None = None,
) -> RoleOutcome[ReviewVerdict]:
    """Ask the reviewer for a verdict on ``diff`` (approve or request_changes, with reasons).

    Raises:
        AgentOutputError: no valid verdict even after one repair request.
        AgentServerError, AgentTimeoutError: the codex call failed.
    """
    marker = _marker(AgentRole.REVIEWER, spec)
    prompt = render(
        "reviewer",
        marker=marker,
        context=context,
        task_id=spec.id,
        title=spec.title,
        goal=spec.goal.strip(),
        test_summary=_test_summary(test_report),
        diff=_cut_diff(diff),
        schema=schema_text(ReviewVerdict),
    )
    call = _Call(
        role=AgentRole.REVIEWER,
        marker=marker,
        prompt=prompt,
        cwd=repo,
        sandbox=_read_only(session),
        output_model=ReviewVerdict,
        on_event=on_event,
    )
    return await _run(session, call, lambda turns: _validated(ReviewVerdict, turns[-1]))


def build_test_report(command: str, turns: list[Turn]) -> TestReport:
    """The test report from the last run of ``command`` in ``turns`` (not the model's claim).

    Raises:
        InvalidAnswer: the command did not run to completion in these turns.
    """
    run = _last_run(command, turns)
    if run is None or run.exit_code is None:
        raise InvalidAnswer(f"the test command `{command}` was not run")
    counts = parse_pytest_summary(run.output)
    # The summary is what pytest printed; the tester's own words only when it printed none.
    summary = counts.line if counts else _tester_summary(turns[-1])
    return TestReport(
        command=command,
        exit_code=run.exit_code,
        passed=run.exit_code == 0,
        tests_passed=counts.passed if counts else 0,
        tests_failed=counts.failed if counts else 0,
        tests_errored=counts.errors if counts else 0,
        tests_skipped=counts.skipped if counts else 0,
        summary=summary[:4000],
    )


async def _run(
    session: AgentSession, call: _Call, parse: Callable[[list[Turn]], T]
) -> RoleOutcome[T]:
    first = await session.start(
        call.prompt, cwd=call.cwd, sandbox=call.sandbox, on_event=call.on_event
    )
    turns = [first]
    try:
        output = parse(turns)
    except InvalidAnswer as problem:
        repair = _repair_prompt(call, str(problem))
        turns.append(await session.reply(first.thread_id, repair, on_event=call.on_event))
        try:
            output = parse(turns)
        except InvalidAnswer as again:
            raise AgentOutputError(
                f"the {call.role.value}'s answer is still invalid after one repair request: "
                f"{again}",
                role=call.role.value,
                tool="codex-reply",
            ) from None
    return _outcome(call.role, output, turns, prompt=call.prompt)


def _outcome(role: AgentRole, output: T, turns: list[Turn], *, prompt: str) -> RoleOutcome[T]:
    tokens = TokenUsage()
    for turn in turns:
        tokens = tokens + turn.tokens
    return RoleOutcome(
        role=role,
        output=output,
        thread_id=turns[0].thread_id,
        turns=list(turns),
        commands=[c for turn in turns for c in turn.commands],
        patches=[p for turn in turns for p in turn.patches],
        tokens=tokens,
        duration_ms=sum(turn.duration_ms for turn in turns),
        prompt_sha256=hashlib.sha256(prompt.encode("utf-8")).hexdigest(),
        repaired=len(turns) > 1,
    )


def _repair_prompt(call: _Call, problem: str) -> str:
    return render(
        "repair",
        marker=call.marker | {"kind": "repair"},
        problem=problem,
        instructions=call.repair_instructions,
        schema=schema_text(call.output_model),
    )


def _validated(model: type[M], turn: Turn) -> M:
    data = extract_json(turn.text)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidAnswer(_first_error(exc)) from None


def _first_error(exc: ValidationError) -> str:
    errors = exc.errors(include_input=False, include_url=False)
    parts = [f"{'.'.join(str(p) for p in e['loc']) or '(answer)'}: {e['msg']}" for e in errors]
    more = f" (and {len(parts) - 3} more)" if len(parts) > 3 else ""
    return "; ".join(parts[:3]) + more


def _last_run(command: str, turns: list[Turn]) -> ExecCommandEnd | None:
    wanted = _normalize(command)
    runs = [r for turn in turns for r in turn.exec_results if wanted in _normalize(r.text)]
    return runs[-1] if runs else None


def _tester_summary(turn: Turn) -> str:
    try:
        return TesterAnswer.model_validate(extract_json(turn.text)).summary.strip()
    except (InvalidAnswer, ValidationError):
        return ""


def _normalize(command: str) -> str:
    return re.sub(r"\s+", " ", command).strip()


def _marker(role: AgentRole, spec: TaskSpec) -> dict[str, str]:
    return {"role": role.value, "task": spec.id}


def _read_only(session: AgentSession) -> SandboxMode:
    # Planner and reviewer change nothing; without a sandbox at all we keep none.
    return "danger-full-access" if session.config.sandbox == "danger-full-access" else "read-only"


def _test_summary(report: TestReport) -> str:
    state = "passed" if report.passed else "FAILED"
    counts = (
        f"{report.tests_passed} passed, {report.tests_failed} failed, "
        f"{report.tests_errored} errors, {report.tests_skipped} skipped"
    )
    text = f"`{report.command}` {state} (exit code {report.exit_code}; {counts}). {report.summary}"
    if report.lint:
        failures = lint_failures(report.lint)
        text += f" Linters: {failures}" if failures else " Linters: all clean."
    return text


def _cut_diff(diff: str) -> str:
    if len(diff) <= MAX_DIFF_CHARS:
        return diff
    return diff[:MAX_DIFF_CHARS] + f"\n... (diff cut at {MAX_DIFF_CHARS} characters)"
