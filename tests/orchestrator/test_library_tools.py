"""The library's linters (ruff, eslint) and the jscodeshift codemod on real tools.

ruff comes from its wheel; jscodeshift and eslint from the project-local node folder
that ``make test`` fills from ``tools/node/package-lock.json``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.codemods import run_codemod
from orchestrator.exceptions import LibraryError
from orchestrator.gitops import git
from orchestrator.library import Library
from orchestrator.linters import run_linter
from schemas import LibraryEntry
from tests.conftest import REPO_ROOT
from tests.helpers.library import sample_worktree, write_yaml

PROJECT_LIBRARY = REPO_ROOT / "library"
NODE_TOOLS = REPO_ROOT / "tools" / "node"


def _entry(pin: str) -> LibraryEntry:
    library = Library(PROJECT_LIBRARY / "index.yaml", runs_dir=REPO_ROOT / ".runs-unused")
    return library.resolve(pin)


def test_the_ruff_entry_names_each_finding_with_file_line_and_rule(tmp_path: Path) -> None:
    tree = sample_worktree(tmp_path, "sample-repo")
    no_print = _entry("no-print@^1")
    assert run_linter(
        no_print, library_root=PROJECT_LIBRARY, worktree=tree, node_tools=NODE_TOOLS
    ).passed

    core = tree / "textkit" / "core.py"
    core.write_text(core.read_text() + "\n\ndef noisy() -> None:\n    print('debug')\n")
    git(tree, "commit", "-qam", "a print slipped in")
    report = run_linter(
        no_print, library_root=PROJECT_LIBRARY, worktree=tree, node_tools=NODE_TOOLS
    )

    assert not report.passed
    assert report.exit_code == 1
    assert report.entry == "no-print@1.0.0"
    [finding] = report.findings
    assert (finding.path, finding.rule) == ("textkit/core.py", "T201")
    assert finding.line == len(core.read_text().splitlines())
    assert "print" in finding.message


def test_the_eslint_entry_finds_console_calls_in_the_javascript_sample(tmp_path: Path) -> None:
    tree = sample_worktree(tmp_path, "js-sample")
    report = run_linter(
        _entry("no-console-js"), library_root=PROJECT_LIBRARY, worktree=tree, node_tools=NODE_TOOLS
    )

    assert not report.passed, report.summary
    assert [(f.path, f.line, f.rule) for f in report.findings] == [("src/main.js", 3, "no-console")]


def test_the_jscodeshift_entry_renames_a_function_in_every_file(tmp_path: Path) -> None:
    tree = sample_worktree(tmp_path, "js-sample")
    outcome = run_codemod(
        _entry("rename-function-js@^1"),
        library_root=PROJECT_LIBRARY,
        worktree=tree,
        args=["--old=makeGreeting", "--new=buildGreeting"],
        node_tools=NODE_TOOLS,
    )

    assert outcome.ok, outcome.output
    assert outcome.entry == "rename-function-js@1.0.0"
    assert outcome.changed == ["src/greet.js", "src/main.js"]
    assert "makeGreeting" not in (tree / "src" / "greet.js").read_text()
    assert 'const { buildGreeting } = require("./greet");' in (tree / "src" / "main.js").read_text()
    assert "+  return names.map((name) => buildGreeting(name));" in outcome.diff


def test_a_failing_transform_leaves_the_javascript_as_it_was(tmp_path: Path) -> None:
    tree = sample_worktree(tmp_path, "js-sample")
    outcome = run_codemod(
        _entry("rename-function-js@^1"),
        library_root=PROJECT_LIBRARY,
        worktree=tree,
        args=["--old=makeGreeting"],  # no --new: the transform throws
        node_tools=NODE_TOOLS,
    )

    assert not outcome.ok
    assert outcome.command.exit_code not in (0, None)
    assert "needs --old NAME and --new NAME" in outcome.output
    assert (outcome.changed, git(tree, "status", "--porcelain")) == ([], "")


def test_a_missing_tool_or_a_wrong_kind_is_one_clear_error(tmp_path: Path) -> None:
    tree = sample_worktree(tmp_path, "js-sample")
    nowhere = tmp_path / "no-node-tools"
    with pytest.raises(LibraryError, match=f"eslint is not installed in {nowhere}: run 'npm ci"):
        run_linter(
            _entry("no-console-js"), library_root=PROJECT_LIBRARY, worktree=tree, node_tools=nowhere
        )
    with pytest.raises(LibraryError, match="linters run through ruff or eslint"):
        run_linter(
            _entry("rename-function-js"),
            library_root=PROJECT_LIBRARY,
            worktree=tree,
            node_tools=NODE_TOOLS,
        )
    assert git(tree, "status", "--porcelain") == ""


def test_a_linter_whose_globs_match_nothing_reports_that_it_did_not_run(tmp_path: Path) -> None:
    tree = sample_worktree(tmp_path, "js-sample")
    data = _entry("no-print").model_dump(mode="json")
    index = write_yaml(tmp_path / "lib" / "index.yaml", {"schema_version": 1, "entries": [data]})
    report = run_linter(
        Library(index, runs_dir=tmp_path / ".runs").resolve("no-print"),
        library_root=index.parent,
        worktree=tree,
        node_tools=NODE_TOOLS,
    )

    assert (report.passed, report.exit_code, report.command) == (True, None, "skipped")
    assert report.summary == "no tracked file matches its globs"


def test_a_codemod_with_no_file_to_work_on_is_skipped_not_run(tmp_path: Path) -> None:
    tree = sample_worktree(tmp_path, "sample-repo")  # Python only: no JavaScript file
    outcome = run_codemod(
        _entry("rename-function-js"),
        library_root=PROJECT_LIBRARY,
        worktree=tree,
        args=["--old=a", "--new=b"],
        node_tools=NODE_TOOLS,
    )

    assert outcome.ok
    assert (outcome.command.status, outcome.command.exit_code) == ("skipped", None)
    assert outcome.output == "no tracked file matches its globs"
