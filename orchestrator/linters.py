"""Checks from the learning library: run a linter entry in a worktree and read its findings.

A ruff or eslint entry runs as a command of its own in the worktree, with the minimal
environment codemods get, over the tracked files its globs select, and reports in JSON.
The result is a :class:`schemas.LintReport`: the command, its exit code, and each
finding with its file (relative to the worktree), line, column and rule. The entry's
``run.script``, when given, is the tool's configuration file (ruff ``--config``, eslint
``--config``); without one, the tool runs with the entry's arguments only (ruff
``--isolated``, eslint ``--no-config-lookup``), ignoring the repository's own
configuration, so the entry's version fixes what it checks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from schemas import LibraryEntry, LibraryKind, LibraryTool, LintFinding, LintReport

from .codemods import SKIPPED, matching_files, run_tool
from .exceptions import LibraryError
from .library import checked_script
from .library_tools import tool_executable

LINTER_TOOLS = frozenset({LibraryTool.RUFF, LibraryTool.ESLINT})
# The exit codes that mean "ran and reported" (0 clean, 1 findings); others are failures.
REPORTED = frozenset({0, 1})


def run_linter(
    entry: LibraryEntry, *, library_root: Path, worktree: Path, node_tools: Path
) -> LintReport:
    """Run a linter entry over the worktree's matching tracked files.

    Args:
        entry: A ``linter`` entry with tool ``ruff`` or ``eslint``.
        library_root: The folder its ``run.script`` (a configuration file) is relative to.
        worktree: The checkout to lint.
        node_tools: The folder eslint is installed in (``Settings.node_tools_path``).

    Raises:
        LibraryError: not a ruff or eslint linter, its configuration file is missing or
            changed since the entry recorded its hash, or its tool is not installed.
    """
    if entry.kind is not LibraryKind.LINTER or entry.tool not in LINTER_TOOLS:
        raise LibraryError(
            f"{entry.ref} is a {entry.tool.value} {entry.kind.value}; linters run through "
            "ruff or eslint",
            entry=entry.ref,
        )
    files = matching_files(worktree, entry)
    if not files:
        return LintReport(
            entry=entry.ref,
            command=SKIPPED,
            exit_code=None,
            passed=True,
            summary="no tracked file matches its globs",
        )
    argv = [*_command(entry, library_root, node_tools), *files]
    record, output = run_tool(argv, worktree, "", timeout=entry.run.timeout_seconds)
    if record.exit_code not in REPORTED:
        return LintReport(
            entry=entry.ref,
            command=record.command,
            exit_code=record.exit_code,
            passed=False,
            summary=f"{entry.tool.value} did not run to the end: {output[-2000:]}",
        )
    findings = _findings(entry.tool, output, worktree)
    return LintReport(
        entry=entry.ref,
        command=record.command,
        exit_code=record.exit_code,
        passed=not findings,
        findings=findings,
        summary=f"{len(findings)} finding(s) in {len(files)} file(s)",
    )


def _command(entry: LibraryEntry, library_root: Path, node_tools: Path) -> list[str]:
    executable = str(tool_executable(entry.tool, node_tools=node_tools))
    config = str(checked_script(entry, library_root)[0].resolve()) if entry.run.script else None
    if entry.tool is LibraryTool.RUFF:
        settings = ["--config", config] if config else ["--isolated"]
        return [
            executable,
            "check",
            "--no-cache",
            "--output-format=json",
            *settings,
            *entry.run.args,
        ]
    settings = ["--config", config] if config else ["--no-config-lookup"]
    return [executable, "--format=json", "--no-warn-ignored", *settings, *entry.run.args]


def _findings(tool: LibraryTool, output: str, worktree: Path) -> list[LintFinding]:
    report = _json_report(output, tool)
    if tool is LibraryTool.RUFF:
        return [_ruff_finding(item, worktree) for item in report]
    return [
        _eslint_finding(file["filePath"], message, worktree)
        for file in report
        for message in file.get("messages", [])
    ]


def _json_report(output: str, tool: LibraryTool) -> list[dict[str, Any]]:
    start = output.find("[")  # the report is the JSON array; warnings may follow it
    try:
        report, _ = json.JSONDecoder().raw_decode(output, max(start, 0))
    except json.JSONDecodeError as exc:
        raise LibraryError(f"{tool.value} printed no JSON report: {output[:500]!r}") from exc
    if not isinstance(report, list):
        raise LibraryError(f"{tool.value}'s report is not a list: {output[:500]!r}")
    return report


def _ruff_finding(item: dict[str, Any], worktree: Path) -> LintFinding:
    location = item.get("location") or {}
    return LintFinding(
        path=_relative(item["filename"], worktree),
        line=location.get("row"),
        column=location.get("column"),
        rule=item.get("code"),
        message=str(item.get("message", ""))[:2000],
    )


def _eslint_finding(path: str, message: dict[str, Any], worktree: Path) -> LintFinding:
    return LintFinding(
        path=_relative(path, worktree),
        line=message.get("line"),
        column=message.get("column"),
        rule=message.get("ruleId"),
        message=str(message.get("message", ""))[:2000],
    )


def _relative(path: str, worktree: Path) -> str:
    candidate = Path(path)
    try:
        return candidate.resolve().relative_to(worktree.resolve()).as_posix()
    except ValueError:
        return path
