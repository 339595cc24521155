"""Deterministic edits: run a library codemod in a worktree and record what it changed.

A codemod runs as a command of its own, in the worktree, with a minimal environment (no
secrets from ours), over the tracked files its entry's globs select: a libcst codemod
through ``orchestrator._libcst_runner`` (file names on stdin), a jscodeshift transform
through the pinned jscodeshift (:mod:`orchestrator.library_tools`). The result is the
command record (with its exit code) and the diff it left, ready for a manifest step. A
codemod that fails or times out leaves the worktree as it found it. Every tool runs in a
bubblewrap sandbox that lets it write the worktree and nothing else, without network.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from schemas import CommandRecord, LibraryEntry, LibraryKind, LibraryTool

from ._tool_sandbox import sandboxed
from .exceptions import InvalidInputError, LibraryError
from .gitops import git, uncommitted_diff
from .library import checked_script
from .library_tools import tool_executable

RUNNER_MODULE = "orchestrator._libcst_runner"
DEFAULT_GLOBS = {"python": "**/*.py", "javascript": "**/*.js", "typescript": "**/*.ts"}
# What a library tool's process inherits: enough to run Python or node, nothing of ours.
KEPT_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
OUTPUT_LIMIT = 20_000
SKIPPED = "skipped"  # the status of a tool run that had no file to work on
CODEMOD_TOOLS = frozenset({LibraryTool.LIBCST, LibraryTool.JSCODESHIFT})


@dataclass(frozen=True)
class CodemodOutcome:
    """What one codemod run did in a worktree."""

    entry: str  # name@version
    command: CommandRecord
    changed: list[str]
    diff: str
    output: str

    @property
    def ok(self) -> bool:
        return self.command.exit_code == 0 or self.command.status == SKIPPED


def run_codemod(
    entry: LibraryEntry,
    *,
    library_root: Path,
    worktree: Path,
    args: Sequence[str] = (),
    python: str = sys.executable,
    node_tools: Path | None = None,
) -> CodemodOutcome:
    """Run a codemod entry over the worktree's matching tracked files.

    Args:
        entry: A ``codemod`` entry with tool ``libcst`` or ``jscodeshift``.
        library_root: The folder its ``run.script`` is relative to (the index's folder).
        worktree: A git worktree without uncommitted changes, so the diff is the codemod's.
        args: Arguments for this use (after the entry's own ``run.args``).
        python: The interpreter that runs a libcst codemod (one with libcst and this
            package).
        node_tools: The folder jscodeshift is installed in (``Settings.node_tools_path``);
            needed for jscodeshift entries.

    Raises:
        LibraryError: not a codemod of those tools, its script is missing or changed
            since the entry recorded its hash, or its tool is not installed.
        InvalidInputError: the worktree has uncommitted changes.
    """
    script = _checked_script(entry, library_root)
    _require_clean(worktree)
    files = matching_files(worktree, entry)
    if not files:
        return _nothing_to_do(entry, worktree)
    if entry.tool is LibraryTool.LIBCST:
        argv = [python, "-m", RUNNER_MODULE, str(script), *entry.run.args, *args]
    else:
        argv = [*_jscodeshift(node_tools), f"--transform={script}", *entry.run.args, *args]
    stdin = "".join(f"{name}\n" for name in files)  # both read the file names from stdin
    record, output = run_tool(argv, worktree, stdin, timeout=entry.run.timeout_seconds)
    output = output[-OUTPUT_LIMIT:]
    if record.exit_code != 0:  # all or nothing: a failed edit leaves no trace
        _restore(worktree)
    changed = git(worktree, "diff", "--name-only").splitlines()
    diff = uncommitted_diff(worktree) if changed else ""
    return CodemodOutcome(
        entry=entry.ref, command=record, changed=changed, diff=diff, output=output
    )


def _nothing_to_do(entry: LibraryEntry, worktree: Path) -> CodemodOutcome:
    record = CommandRecord(command=f"{entry.ref} (not run)", cwd=str(worktree), status=SKIPPED)
    output = "no tracked file matches its globs"
    return CodemodOutcome(entry=entry.ref, command=record, changed=[], diff="", output=output)


def matching_files(worktree: Path, entry: LibraryEntry) -> list[str]:
    """The tracked files under ``worktree`` its ``applies_to.globs`` select (sorted).

    Without globs, the usual files of its languages (``**/*.py`` for python).
    """
    globs = entry.applies_to.globs or [
        DEFAULT_GLOBS[lang] for lang in entry.applies_to.languages if lang in DEFAULT_GLOBS
    ]
    tracked = set(git(worktree, "ls-files", "-z").split("\0")) - {""}
    selected = {name for name in tracked if any(_glob_match(name, g) for g in globs)}
    return sorted(selected)


def _glob_match(name: str, pattern: str) -> bool:
    return _glob_regex(pattern).fullmatch(name) is not None


@cache
def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A glob as a regex: ``**/`` any folders (or none), ``*`` and ``?`` within one name."""
    parts = re.split(r"(\*\*/|\*\*|\*|\?)", pattern)
    wildcards = {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}
    return re.compile("".join(wildcards.get(part, re.escape(part)) for part in parts))


def _checked_script(entry: LibraryEntry, library_root: Path) -> Path:
    if entry.kind is not LibraryKind.CODEMOD or entry.tool not in CODEMOD_TOOLS:
        raise LibraryError(
            f"{entry.ref} is a {entry.tool.value} {entry.kind.value}; codemods run "
            "through libcst or jscodeshift",
            entry=entry.ref,
        )
    script, _ = checked_script(entry, library_root)
    return script.resolve()


def _jscodeshift(node_tools: Path | None) -> list[str]:
    if node_tools is None:
        raise LibraryError("jscodeshift codemods need the node tools folder (node_tools=)")
    executable = tool_executable(LibraryTool.JSCODESHIFT, node_tools=node_tools)
    # In-band: one process, so a timeout kills the whole transform; errors fail the run.
    return [str(executable), "--run-in-band", "--fail-on-error", "--no-babel", "--stdin"]


def _require_clean(worktree: Path) -> None:
    dirty = git(worktree, "status", "--porcelain", "--untracked-files=normal")
    if dirty:
        raise InvalidInputError(
            f"worktree {worktree} has {len(dirty.splitlines())} uncommitted change(s); "
            "a codemod runs on a clean one so its diff is its own"
        )


def run_tool(argv: list[str], cwd: Path, stdin: str, *, timeout: int) -> tuple[CommandRecord, str]:
    """Run a library tool's command in ``cwd`` with a minimal environment, in a sandbox
    where only ``cwd`` is writable (:mod:`orchestrator._tool_sandbox`).

    Returns its record (the tool's own command line; its exit code, or none and
    ``timed_out``) and its output (stdout, then stderr).

    Raises:
        LibraryError: the sandbox (bubblewrap) is not installed.
    """
    wrapped = sandboxed(argv, cwd)
    env = {name: os.environ[name] for name in KEPT_ENV if name in os.environ}
    env.update(PYTHONHASHSEED="0", PYTHONDONTWRITEBYTECODE="1")
    started = time.monotonic()
    try:
        completed = subprocess.run(
            wrapped,
            input=stdin,
            capture_output=True,
            text=True,
            cwd=cwd,
            env=env,
            timeout=timeout,
            check=False,
        )
        exit_code: int | None = completed.returncode
        status = "completed" if exit_code == 0 else "failed"
        output = completed.stdout + completed.stderr
    except subprocess.TimeoutExpired as exc:  # run() has killed it
        exit_code, status = None, "timed_out"
        output = _text(exc.stdout) + _text(exc.stderr) + f"\ntimed out after {timeout}s"
    record = CommandRecord(
        command=shlex.join(argv),
        cwd=str(cwd),
        exit_code=exit_code,
        status=status,
        duration_ms=int((time.monotonic() - started) * 1000),
    )
    return record, output


def _text(data: bytes | str | None) -> str:
    if isinstance(data, bytes):
        return data.decode("utf-8", errors="replace")
    return data or ""


def _restore(worktree: Path) -> None:
    git(worktree, "checkout", "--", ".")
    git(worktree, "clean", "-fdq")
