from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.codemods import matching_files, run_codemod
from orchestrator.exceptions import InvalidInputError, LibraryError
from orchestrator.gitops import fresh_worktree, git
from orchestrator.library import Library
from schemas import LibraryEntry
from tests.conftest import REPO_ROOT
from tests.helpers.library import codemod_data, entry_data, sample_git_copy

PROJECT_LIBRARY = REPO_ROOT / "library"
RENAME = ("--old", "word_count", "--new", "count_words")


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    """A git copy of examples/sample-repo (textkit)."""
    return sample_git_copy(tmp_path)


@pytest.fixture
def rename_entry() -> LibraryEntry:
    library = Library(PROJECT_LIBRARY / "index.yaml", runs_dir=REPO_ROOT / ".runs-unused")
    return library.resolve("rename-function@^1")


def _library_with_script(tmp_path: Path, text: str) -> Path:
    """A library folder whose codemods/rename.py holds ``text``; returns the folder."""
    script = tmp_path / "library" / "codemods" / "rename.py"
    script.parent.mkdir(parents=True)
    script.write_text(text)
    return script.parent.parent


def _worktree(sample: Path, tmp_path: Path, name: str) -> Path:
    base = git(sample, "rev-parse", "HEAD")
    return fresh_worktree(sample, tmp_path / "work" / name, f"run/{name}", base).path


def test_the_rename_codemod_edits_the_worktree_and_reports_its_diff(
    sample: Path, tmp_path: Path, rename_entry: LibraryEntry
) -> None:
    tree = _worktree(sample, tmp_path, "one")
    outcome = run_codemod(rename_entry, library_root=PROJECT_LIBRARY, worktree=tree, args=RENAME)

    assert outcome.ok, outcome.output
    assert outcome.entry == "rename-function@1.0.0"
    assert outcome.command.exit_code == 0
    assert "orchestrator._libcst_runner" in outcome.command.command
    assert outcome.changed == ["tests/test_core.py", "textkit/__init__.py", "textkit/core.py"]
    assert "-def word_count(text: str) -> int:\n+def count_words(text: str) -> int:" in (
        outcome.diff
    )
    assert '+__all__ = ["normalize_whitespace", "count_words"]' in outcome.diff
    assert "word_count" not in (tree / "textkit" / "core.py").read_text()
    # the target's own checkout is untouched; the edit lives only in the worktree
    assert "def word_count" in (sample / "textkit" / "core.py").read_text()
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr


def test_the_same_codemod_gives_the_same_diff_twice(
    sample: Path, tmp_path: Path, rename_entry: LibraryEntry
) -> None:
    diffs = [
        run_codemod(
            rename_entry,
            library_root=PROJECT_LIBRARY,
            worktree=_worktree(sample, tmp_path, name),
            args=RENAME,
        ).diff
        for name in ("a", "b")
    ]
    assert diffs[0] and diffs[0] == diffs[1]


def test_a_failing_codemod_leaves_the_worktree_as_it_was(sample: Path, tmp_path: Path) -> None:
    library_root = _library_with_script(
        tmp_path,
        "import libcst as cst\n"
        "from libcst.codemod import VisitorBasedCodemodCommand\n\n"
        "class Breaks(VisitorBasedCodemodCommand):\n"
        "    def leave_Module(self, original_node, updated_node):\n"
        "        if self.context.filename == 'textkit/core.py':\n"
        "            raise RuntimeError('cannot handle this file')\n"
        "        mark = cst.EmptyLine(comment=cst.Comment('# touched'))\n"
        "        return updated_node.with_changes(header=[mark])\n",
    )
    entry = LibraryEntry.model_validate(
        codemod_data(
            run={"script": "codemods/rename.py"},
            applies_to={"languages": ["python"], "globs": ["**/*.py"]},
        )
    )
    tree = _worktree(sample, tmp_path, "fails")
    outcome = run_codemod(entry, library_root=library_root, worktree=tree)

    assert not outcome.ok
    assert (outcome.command.exit_code, outcome.command.status) == (1, "failed")
    assert "textkit/core.py: RuntimeError: cannot handle this file" in outcome.output
    assert (outcome.changed, outcome.diff) == ([], "")
    assert git(tree, "status", "--porcelain") == ""


def test_bad_input_is_refused_before_anything_runs(
    sample: Path, tmp_path: Path, rename_entry: LibraryEntry
) -> None:
    tree = _worktree(sample, tmp_path, "bad")
    linter = LibraryEntry.model_validate(entry_data())
    with pytest.raises(LibraryError, match="codemods run through libcst or jscodeshift"):
        run_codemod(linter, library_root=PROJECT_LIBRARY, worktree=tree)
    changed = rename_entry.run.model_copy(update={"script_sha256": "0" * 64})
    with pytest.raises(LibraryError, match="it changed since the entry was recorded"):
        run_codemod(
            rename_entry.model_copy(update={"run": changed}),
            library_root=PROJECT_LIBRARY,
            worktree=tree,
        )
    (tree / "textkit" / "core.py").write_text("# edited by hand\n")
    with pytest.raises(InvalidInputError, match="1 uncommitted change"):
        run_codemod(rename_entry, library_root=PROJECT_LIBRARY, worktree=tree, args=RENAME)
    assert (tree / "textkit" / "core.py").read_text() == "# edited by hand\n"


def test_globs_select_tracked_files_only(sample: Path) -> None:
    (sample / "scratch.py").write_text("untracked = 1\n")
    entry = LibraryEntry.model_validate(
        codemod_data(applies_to={"languages": ["python"], "globs": ["textkit/*.py"]})
    )
    assert matching_files(sample, entry) == ["textkit/__init__.py", "textkit/core.py"]
    every = LibraryEntry.model_validate(codemod_data(applies_to={"languages": ["python"]}))
    assert "scratch.py" not in matching_files(sample, every)
    assert "tests/test_core.py" in matching_files(sample, every)


def test_what_a_broken_script_wrote_is_undone(sample: Path, tmp_path: Path) -> None:
    library_root = _library_with_script(
        tmp_path,
        "from pathlib import Path\n"
        "Path('textkit/core.py').write_text('clobbered\\n')\n"
        "Path('new_file.py').write_text('left behind\\n')\n",
    )
    entry = LibraryEntry.model_validate(
        codemod_data(
            run={"script": "codemods/rename.py"},
            applies_to={"languages": ["python"], "globs": ["**/*.py"]},
        )
    )
    tree = _worktree(sample, tmp_path, "broken")
    outcome = run_codemod(entry, library_root=library_root, worktree=tree)

    assert outcome.command.exit_code == 2
    assert "defines 0 codemod classes" in outcome.output
    assert git(tree, "status", "--porcelain") == ""
    assert "def word_count" in (tree / "textkit" / "core.py").read_text()


def test_a_codemod_writes_nothing_outside_its_worktree_and_reaches_no_network(
    sample: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.txt"
    library_root = _library_with_script(
        tmp_path,
        "import socket\nfrom pathlib import Path\n"
        "try:\n"
        f"    Path({str(outside)!r}).write_text('escaped')\n"
        "except OSError as exc:\n"
        "    print('write refused:', exc)\n"
        "try:\n"
        "    socket.create_connection(('192.0.2.1', 80), timeout=2)\n"
        "except OSError as exc:\n"
        "    print('network refused:', exc)\n"
        "raise SystemExit(2)\n",
    )
    entry = LibraryEntry.model_validate(
        codemod_data(
            run={"script": "codemods/rename.py"},
            applies_to={"languages": ["python"], "globs": ["**/*.py"]},
        )
    )
    tree = _worktree(sample, tmp_path, "escape")
    outcome = run_codemod(entry, library_root=library_root, worktree=tree)

    assert not outside.exists()
    assert "write refused: [Errno 30] Read-only file system" in outcome.output
    assert "network refused:" in outcome.output
    assert git(tree, "status", "--porcelain") == ""


def test_reading_a_codemods_diff_runs_no_program_the_repository_names(
    sample: Path, tmp_path: Path, rename_entry: LibraryEntry
) -> None:
    marker = tmp_path / "external-diff-ran"
    git(sample, "config", "diff.external", f"sh -c 'touch {marker}'")
    tree = _worktree(sample, tmp_path, "ext")
    outcome = run_codemod(rename_entry, library_root=PROJECT_LIBRARY, worktree=tree, args=RENAME)

    assert outcome.ok, outcome.output
    assert "+def count_words(" in outcome.diff
    assert not marker.exists()
