"""Templates of the learning library rendered into a worktree (Jinja, strict, sandboxed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.exceptions import LibraryError
from orchestrator.gitops import git
from orchestrator.library import Library
from orchestrator.templates import render_template
from schemas import LibraryEntry
from tests.conftest import REPO_ROOT
from tests.helpers.library import sample_worktree

PROJECT_LIBRARY = REPO_ROOT / "library"
SMOKE = ["--to", "tests/test_smoke.py", "--set", "package=textkit", "--set", "function=slugify"]


@pytest.fixture
def smoke() -> LibraryEntry:
    return Library(PROJECT_LIBRARY / "index.yaml", runs_dir=REPO_ROOT / ".unused").resolve(
        "pytest-smoke@^1"
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return sample_worktree(tmp_path)


def test_a_template_renders_a_new_file_with_its_variables(smoke: LibraryEntry, tree: Path) -> None:
    outcome = render_template(smoke, library_root=PROJECT_LIBRARY, worktree=tree, args=SMOKE)

    assert outcome.ok and outcome.entry == "pytest-smoke@1.0.0"
    assert outcome.changed == ["tests/test_smoke.py"]
    text = (tree / "tests" / "test_smoke.py").read_text()
    assert "from textkit import slugify" in text
    assert "def test_slugify_is_exported_and_callable():" in text
    assert "+from textkit import slugify" in outcome.diff
    assert outcome.command.command == "render pytest-smoke@1.0.0 --to tests/test_smoke.py"


def test_an_unset_variable_fails_and_writes_nothing(smoke: LibraryEntry, tree: Path) -> None:
    outcome = render_template(
        smoke,
        library_root=PROJECT_LIBRARY,
        worktree=tree,
        args=["--to", "tests/test_smoke.py", "--set", "package=textkit"],
    )

    assert not outcome.ok
    assert "'function' is undefined" in outcome.output
    assert not (tree / "tests" / "test_smoke.py").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--to", "../escape.py"], "must be a path inside the worktree"),
        (["--to", "/etc/x.py"], "must be a path inside the worktree"),
        (["--set", "a=b"], "takes --to PATH and --set NAME=VALUE"),
        (["--to", "x.py", "--set", "no-equals"], "is not NAME=VALUE"),
    ],
)
def test_bad_arguments_are_one_clear_error(
    smoke: LibraryEntry, tree: Path, args: list[str], message: str
) -> None:
    with pytest.raises(LibraryError, match=message):
        render_template(smoke, library_root=PROJECT_LIBRARY, worktree=tree, args=args)
    assert git(tree, "status", "--porcelain") == ""


def test_a_target_through_a_symbolic_link_is_refused(
    smoke: LibraryEntry, tree: Path, tmp_path: Path
) -> None:
    (tree / "out").symlink_to(tmp_path)
    with pytest.raises(LibraryError, match="goes through a symbolic link"):
        render_template(
            smoke, library_root=PROJECT_LIBRARY, worktree=tree, args=["--to", "out/x.py"]
        )
    assert not (tmp_path / "x.py").exists()
