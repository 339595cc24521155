"""Structured outputs the agents return; each is validated before the run uses it."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, model_validator

from ._base import StrictModel
from .task import SubtaskSpec, check_unique_ids


class Plan(StrictModel):
    """The planner's answer: the goal split into subtasks."""

    summary: str = Field(min_length=1, max_length=4000)
    subtasks: list[SubtaskSpec] = Field(min_length=1, max_length=32)

    @model_validator(mode="after")
    def _unique_ids(self) -> Plan:
        check_unique_ids([s.id for s in self.subtasks])
        return self


class BuildReport(StrictModel):
    """The builder's answer for its one subtask."""

    subtask_id: str = Field(min_length=1)
    summary: str = Field(min_length=1, max_length=4000)
    files_changed: list[str] = Field(default_factory=list)


class LintFinding(StrictModel):
    """One problem a library linter found, where it is and which rule says so."""

    path: str = Field(description="Relative to the worktree.")
    line: int | None = Field(default=None, ge=0)
    column: int | None = Field(default=None, ge=0)
    rule: str | None = Field(default=None, description="e.g. T201 (ruff), no-console (eslint).")
    message: str = Field(max_length=2000)


class LintReport(StrictModel):
    """What one linter entry of the learning library found in a worktree."""

    entry: str = Field(description="The entry that ran, name@version.")
    command: str
    exit_code: int | None = Field(description="None when it timed out.")
    passed: bool
    findings: list[LintFinding] = Field(default_factory=list)
    summary: str = Field(default="", max_length=4000)


class TestReport(StrictModel):
    """What the test phase observed: counts come from the real exit code and output."""

    __test__ = False  # not a pytest test class

    command: str
    exit_code: int
    passed: bool
    tests_passed: int = Field(default=0, ge=0)
    tests_failed: int = Field(default=0, ge=0)
    tests_errored: int = Field(default=0, ge=0)
    tests_skipped: int = Field(default=0, ge=0)
    summary: str = Field(default="", max_length=4000)
    lint: list[LintReport] = Field(
        default_factory=list,
        description="The task's library linters on the same tree; a finding fails the phase.",
    )

    @property
    def all_passed(self) -> bool:
        """The test command passed (``passed``) and every linter found nothing."""
        return self.passed and all(report.passed for report in self.lint)


class Verdict(StrEnum):
    APPROVE = "approve"
    REQUEST_CHANGES = "request_changes"


class ReviewVerdict(StrictModel):
    """The reviewer's answer."""

    verdict: Verdict
    reasons: list[str] = Field(min_length=1, max_length=50)
    summary: str = Field(default="", max_length=4000)
