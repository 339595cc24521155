"""Checks a run makes on its target that a person may overrule: specs and the diff budget.

Before the plan, the spec guard runs on the target repository (the specs the task names,
or those its own configuration finds): a stale, undated or broken spec becomes the
``spec`` gate. At hand-over, code changed without any spec change is shown on the
hand-over gate (only for a target that has specs), and a result over the task's diff
budget (files or lines changed) becomes the ``diff-budget`` gate. Each finding is one
line of plain text; gates render it literally.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

from schemas import DiffBudget, SpecRule, TaskSpec

from .exceptions import InvalidInputError, SpecError
from .gitops import diff_numstat
from .specguard import check_specs


@dataclass(frozen=True)
class SpecCheck:
    """What the spec guard said about a target: which specs it read and what is wrong."""

    checked: list[str]
    problems: list[str]


def specs_before_plan(repo: Path, spec: TaskSpec, *, today: date | None = None) -> SpecCheck:
    """The target's specs checked for their review dates (a broken one is a problem too)."""
    try:
        report = check_specs(repo, paths=_named(repo, spec), today=today)
    except (SpecError, InvalidInputError) as exc:
        return SpecCheck(checked=[], problems=[f"broken spec: {exc}"])
    problems = [f"{f.file}: {f.detail}" for f in report.findings]
    return SpecCheck(checked=report.checked, problems=problems)


def code_without_spec(worktree: Path, spec: TaskSpec, base_commit: str) -> list[str]:
    """The result's code files changed with no spec changed, for a target with specs."""
    try:
        report = check_specs(worktree, base=base_commit, paths=_named(worktree, spec))
    except (SpecError, InvalidInputError) as exc:
        return [f"broken spec: {exc}"]
    if not report.checked and not report.skipped:
        return []  # a target without specs: nothing to keep in step
    return [
        f"{f.file}: {f.detail}" for f in report.findings if f.rule is SpecRule.CODE_WITHOUT_SPEC
    ]


def over_budget(repo: Path, base: str, head: str, budget: DiffBudget | None) -> list[str]:
    """How the change ``base..head`` exceeds ``budget`` (empty when within it)."""
    if budget is None:
        return []
    changed = diff_numstat(repo, base, head)
    files = len(changed)
    # binary files count as files, not lines
    lines = sum((added or 0) + (removed or 0) for added, removed, _ in changed)
    problems = []
    if budget.max_files is not None and files > budget.max_files:
        problems.append(f"{files} files changed; the budget is {budget.max_files}")
    if budget.max_lines is not None and lines > budget.max_lines:
        problems.append(f"{lines} lines changed; the budget is {budget.max_lines}")
    return problems


def _named(repo: Path, spec: TaskSpec) -> list[Path]:
    return [repo / name for name in spec.specs or []]
