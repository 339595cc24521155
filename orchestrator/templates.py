"""Templates from the learning library: render one Jinja template into a worktree file.

A ``template`` entry (tool ``jinja``) names its template file (``run.script``); a use
says where the file goes and fills its variables: ``--to PATH --set NAME=VALUE ...``.
Rendering is strict (an unset variable fails, nothing is written) and sandboxed (Jinja's
sandbox: a template calls no Python it is not given). The target must stay inside the
worktree and not be a symbolic link. The result is a :class:`CodemodOutcome`, so a
subtask's deterministic edits record templates and codemods alike.
"""

from __future__ import annotations

import argparse
import shlex
import time
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from schemas import CommandRecord, LibraryEntry, LibraryKind, LibraryTool

from .codemods import CodemodOutcome
from .exceptions import LibraryError
from .gitops import git, uncommitted_diff
from .library import checked_script

if TYPE_CHECKING:
    from jinja2.sandbox import SandboxedEnvironment


def render_template(
    entry: LibraryEntry, *, library_root: Path, worktree: Path, args: Sequence[str]
) -> CodemodOutcome:
    """Render ``entry``'s template to the file ``--to`` names, with ``--set`` variables.

    Raises:
        LibraryError: not a jinja template, its file is missing or changed, or the
            arguments are bad (no ``--to``, a target outside the worktree, ``--set``
            without ``=``).
    """
    if entry.kind is not LibraryKind.TEMPLATE or entry.tool is not LibraryTool.JINJA:
        raise LibraryError(f"{entry.ref} is not a jinja template", entry=entry.ref)
    script, _ = checked_script(entry, library_root)
    target, variables = _parse(entry, [*entry.run.args, *args])
    destination = _inside(worktree, target, entry)
    command = f"render {entry.ref} --to {shlex.quote(target)}"
    started = time.monotonic()
    from jinja2 import TemplateError  # here: every flow run imports this module, few render

    try:
        text = _environment().from_string(script.read_text(encoding="utf-8")).render(variables)
    except TemplateError as exc:
        record = _record(command, worktree, started, exit_code=1, status="failed")
        return CodemodOutcome(entry.ref, record, changed=[], diff="", output=str(exc))
    destination.parent.mkdir(parents=True, exist_ok=True)
    destination.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    record = _record(command, worktree, started, exit_code=0, status="completed")
    git(worktree, "add", "--intent-to-add", "--", target)  # a new file shows in the diff
    diff = uncommitted_diff(worktree, target)
    return CodemodOutcome(entry.ref, record, changed=[target], diff=diff, output="")


def _environment() -> SandboxedEnvironment:
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    return SandboxedEnvironment(
        undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False
    )


def _parse(entry: LibraryEntry, args: list[str]) -> tuple[str, dict[str, str]]:
    parser = argparse.ArgumentParser(prog=entry.ref, add_help=False, exit_on_error=False)
    parser.add_argument("--to", required=True)
    parser.add_argument("--set", action="append", default=[])
    try:
        known = parser.parse_args(args)
    except (argparse.ArgumentError, SystemExit):
        raise LibraryError(
            f"{entry.ref} takes --to PATH and --set NAME=VALUE ..., not {shlex.join(args)!r}",
            entry=entry.ref,
        ) from None
    variables = {}
    for pair in known.set:
        name, sep, value = pair.partition("=")
        if not sep or not name.isidentifier():
            raise LibraryError(f"{entry.ref}: --set {pair!r} is not NAME=VALUE", entry=entry.ref)
        variables[name] = value
    return known.to, variables


def _inside(worktree: Path, target: str, entry: LibraryEntry) -> Path:
    path = PurePosixPath(target)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise LibraryError(f"{entry.ref}: --to {target!r} must be a path inside the worktree")
    destination = worktree / path
    for folder in [destination, *destination.parents]:
        if folder == worktree:
            break
        if folder.is_symlink():
            raise LibraryError(f"{entry.ref}: --to {target!r} goes through a symbolic link")
    return destination


def _record(
    command: str, worktree: Path, started: float, *, exit_code: int, status: str
) -> CommandRecord:
    return CommandRecord(
        command=command,
        cwd=str(worktree),
        exit_code=exit_code,
        status=status,
        duration_ms=int((time.monotonic() - started) * 1000),
    )
