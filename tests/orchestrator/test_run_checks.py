"""The checks a run makes on its target: specs before the plan, code without a spec
change and the diff budget before the hand-over."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

from orchestrator.gitops import git
from orchestrator.run_checks import code_without_spec, over_budget, specs_before_plan
from schemas import DiffBudget, TaskSpec
from tests.helpers.specs import commit_all, spec_repo, spec_text, write_spec

TODAY = date(2026, 12, 1)


def task(**changes: Any) -> TaskSpec:
    data: dict[str, Any] = {
        "id": "widgets",
        "title": "More widgets",
        "goal": "More widgets.",
        "target": {"repo": "."},
    }
    return TaskSpec.model_validate(data | changes)


def test_a_stale_spec_is_a_problem_and_a_fresh_one_is_not(tmp_path: Path) -> None:
    stale = spec_repo(tmp_path / "stale", TODAY - timedelta(days=31))
    fresh = spec_repo(tmp_path / "fresh", TODAY - timedelta(days=3))

    stale_check = specs_before_plan(stale, task(), today=TODAY)
    assert stale_check.problems == [
        "docs/specs/0001-widgets.md: last reviewed 31 days ago (2026-10-31); the limit is 30"
    ]
    assert specs_before_plan(fresh, task(), today=TODAY).problems == []


def test_a_named_spec_that_is_missing_or_broken_is_a_problem(tmp_path: Path) -> None:
    repo = spec_repo(tmp_path / "repo", TODAY)
    [missing] = specs_before_plan(repo, task(specs=["docs/specs/nope.md"]), today=TODAY).problems
    assert missing.startswith("broken spec: ") and "nope.md: no such file" in missing
    write_spec(repo, "docs/specs/0002-broken.md", "no front matter\n")
    [broken] = specs_before_plan(repo, task(), today=TODAY).problems
    assert "0002-broken.md" in broken and "no front matter" in broken


def test_code_changed_without_a_spec_change_is_named_for_a_target_with_specs(
    tmp_path: Path,
) -> None:
    repo = spec_repo(tmp_path / "repo", TODAY)
    base = git(repo, "rev-parse", "HEAD")
    (repo / "src" / "widgets.py").write_text("WIDGETS = 2\n")
    commit_all(repo, "more widgets")

    assert code_without_spec(repo, task(), base) == [
        f"src/widgets.py: changed since {base} with no spec file changed"
    ]
    write_spec(repo, "docs/specs/0001-widgets.md", spec_text(TODAY) + "More.\n")
    commit_all(repo, "spec too")
    assert code_without_spec(repo, task(), base) == []


def test_a_target_without_specs_has_no_spec_problem(tmp_path: Path) -> None:
    repo = tmp_path / "plain"
    repo.mkdir()
    (repo / "a.py").write_text("A = 1\n")
    git(repo, "init", "-q", "--initial-branch=main")
    commit_all(repo, "start")
    base = git(repo, "rev-parse", "HEAD")
    (repo / "a.py").write_text("A = 2\n")
    commit_all(repo, "change")

    assert specs_before_plan(repo, task(), today=TODAY).problems == []
    assert code_without_spec(repo, task(), base) == []


def test_the_diff_budget_counts_files_and_lines(tmp_path: Path) -> None:
    repo = spec_repo(tmp_path / "repo", TODAY)
    base = git(repo, "rev-parse", "HEAD")
    (repo / "src" / "widgets.py").write_text("WIDGETS = 2\nMORE = 3\n")  # +2 -1
    (repo / "src" / "gadgets.py").write_text("GADGETS = 1\n")  # +1
    (repo / "logo.bin").write_bytes(b"\0\1\2")  # binary: a file, no lines
    commit_all(repo, "change")
    head = git(repo, "rev-parse", "HEAD")

    assert over_budget(repo, base, head, None) == []
    assert over_budget(repo, base, head, DiffBudget(max_files=3, max_lines=4)) == []
    assert over_budget(repo, base, head, DiffBudget(max_files=2, max_lines=3)) == [
        "3 files changed; the budget is 2",
        "4 lines changed; the budget is 3",
    ]


def test_a_task_naming_a_spec_outside_the_target_is_refused() -> None:
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="must be relative and stay inside the repository"):
        task(specs=["../elsewhere/spec.md"])
