"""Temporary git repositories with spec files, for the spec guard's tests."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from orchestrator.gitops import git

GUARD_SETTINGS = """\
[tool.orchestrator.spec-guard]
spec-dirs = ["docs/specs"]
code-paths = ["src"]
max-age-days = 30
"""


def spec_text(last_review: date | str | None, *, status: str | None = None) -> str:
    """A spec file in the seed's front-matter form."""
    lines = [
        "---",
        "id: 20261101-widgets",
        "title: Widgets",
        "relates_to: tasks/0001-widgets.md",
        "risk: medium",
        "owners:",
        "  - Widget Team",
    ]
    if last_review is not None:
        lines.append(f"last_review: {last_review}")
    if status is not None:
        lines.append(f"status: {status}")
    return "\n".join([*lines, "---", "", "## Summary", "- Widgets.", ""])


def spec_repo(root: Path, last_review: date | str | None) -> Path:
    """A git repository (branch main, one commit) with settings, one spec and code in src/."""
    root.mkdir(parents=True)
    (root / "pyproject.toml").write_text(GUARD_SETTINGS)
    write_spec(root, "docs/specs/0001-widgets.md", spec_text(last_review))
    (root / "src").mkdir()
    (root / "src" / "widgets.py").write_text("WIDGETS = 1\n")
    (root / "README.md").write_text("# widgets\n")
    for command in (
        ["init", "-q", "--initial-branch=main"],
        ["add", "-A"],
        ["commit", "-qm", "start"],
    ):
        git(root, *command)
    return root


def write_spec(repo: Path, rel: str, text: str) -> Path:
    path = repo / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def commit_all(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message)
