"""The learning library inside a run: codemods before a builder's turn, linters in the test phase.

A subtask's ``codemods`` (library codemods, or templates rendered to a file) run in its
fresh worktree before the model is called, each
committed on its own, so the builder starts from their result and its prompt says what
they changed; a codemod that fails fails the step (nothing of it is left). A task's
``linters`` run on the merged result beside the test command. Every entry used is
recorded by ``name@version`` in the step's manifest entry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from schemas import CodemodUse, CommandRecord, LibraryKind, LintReport

from .codemods import run_codemod
from .exceptions import LibraryError
from .gitops import Worktree, commit_all
from .library import Library
from .linters import run_linter
from .literal import md_fence, terminal_text
from .settings import Settings
from .templates import render_template

MAX_NOTE_DIFF_CHARS = 8000


@dataclass
class AppliedCodemods:
    """What a subtask's codemods did before its builder's turn."""

    refs: list[str] = field(default_factory=list)
    commands: list[CommandRecord] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    diffs: list[str] = field(default_factory=list)

    def prompt_note(self) -> str:
        """What the builder is told (empty when no codemod ran)."""
        if not self.refs:
            return ""
        diff = "\n".join(self.diffs)
        if len(diff) > MAX_NOTE_DIFF_CHARS:
            diff = diff[:MAX_NOTE_DIFF_CHARS] + "\n... (diff cut)"
        changed = ", ".join(self.changed) or "no file"
        return (
            "Deterministic edits already made (library codemods, committed in this "
            f"worktree before your turn; do not redo them): {', '.join(self.refs)}. "
            f"They changed: {changed}.\n" + (md_fence(diff, lang="diff") if diff else "")
        )


MAX_CATALOG_ENTRIES = 30


def codemod_catalog(settings: Settings) -> str:
    """The library's codemods and templates as the planner sees them (empty without any).

    Each name's highest version with its tags and what it does, so the planner can name
    one in a subtask's ``codemods``. An index that does not load is left out: a broken
    library must not stop runs that do not use it (a run that names an entry fails on
    it instead).
    """
    try:
        library = Library.of(settings)
        entries = [
            *library.find(kind=LibraryKind.CODEMOD),
            *library.find(kind=LibraryKind.TEMPLATE),
        ]
    except LibraryError:
        return ""
    if not entries:
        return ""
    lines = [
        f"- {e.name}@^{e.version} (tags: {', '.join(e.tags) or 'none'}; "
        f"{', '.join(e.applies_to.languages)}): {terminal_text(e.description)}"
        for e in entries[:MAX_CATALOG_ENTRIES]
    ]
    return (
        "## Deterministic edits you may use\n\n"
        "The project's library has these codemods and templates. When one does a "
        "subtask's mechanical part, name it in that subtask's `codemods` "
        '(`{"use": "name@^1.0.0", "args": [...]}`): it runs before the builder, which '
        "then only does the rest.\n\n" + "\n".join(lines)
    )


def apply_codemods(
    settings: Settings, uses: Sequence[CodemodUse], worktree: Worktree, subtask_id: str
) -> AppliedCodemods:
    """Run each codemod (or render each template) in order in ``worktree`` and commit
    what it changed.

    Raises:
        LibraryError: an entry is unknown, not a codemod, not installed, or failed (its
            exit code and output named; the worktree is left at the last good commit).
    """
    applied = AppliedCodemods()
    library = Library.of(settings)
    for use in uses:
        entry = library.resolve(use.use)
        if entry.kind is LibraryKind.TEMPLATE:
            outcome = render_template(
                entry, library_root=library.root, worktree=worktree.path, args=use.args
            )
        else:
            outcome = run_codemod(
                entry,
                library_root=library.root,
                worktree=worktree.path,
                args=use.args,
                node_tools=settings.node_tools_path,
            )
        applied.refs.append(outcome.entry)
        applied.commands.append(outcome.command)
        if not outcome.ok:
            raise LibraryError(
                f"codemod {outcome.entry} failed (exit code {outcome.command.exit_code}, "
                f"{outcome.command.status}): {outcome.output[-1000:]}",
                entry=outcome.entry,
            )
        if outcome.changed:
            commit_all(worktree, f"{subtask_id}: codemod {outcome.entry}")
            applied.changed += [name for name in outcome.changed if name not in applied.changed]
            applied.diffs.append(outcome.diff)
    return applied


def run_linters(settings: Settings, pins: Sequence[str], worktree: Worktree) -> list[LintReport]:
    """Each linter's report on ``worktree``, in the order given.

    Raises:
        LibraryError: an entry is unknown, not a linter, or its tool is not installed.
    """
    library = Library.of(settings)
    return [
        run_linter(
            library.resolve(pin),
            library_root=library.root,
            worktree=worktree.path,
            node_tools=settings.node_tools_path,
        )
        for pin in pins
    ]


def lint_failures(reports: Sequence[LintReport], *, most: int = 5) -> str:
    """One line naming the failing linters and their first findings (empty when clean)."""
    parts = []
    for report in reports:
        if report.passed:
            continue
        shown = [
            f"{f.path}:{f.line} {f.rule or ''} {f.message}".strip() for f in report.findings[:most]
        ]
        more = len(report.findings) - len(shown)
        detail = "; ".join(shown) + (f"; and {more} more" if more > 0 else "")
        parts.append(f"{report.entry}: {detail or report.summary}")
    return " | ".join(parts)
