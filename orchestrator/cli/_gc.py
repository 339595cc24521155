"""The ``gc`` command: remove what finished runs left in their target repositories."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from orchestrator.exceptions import InvalidInputError, OrchestratorError
from orchestrator.literal import terminal_text
from orchestrator.retention import Action, Item, collect, collect_run
from orchestrator.workspace import Workspace

from ._console import console

_STYLE = {
    Action.REMOVE: "yellow",
    Action.REMOVED: "green",
    Action.KEEP: "cyan",
    Action.FAILED: "red",
}


def register(app: typer.Typer) -> None:
    app.command()(gc)


def gc(
    run: Annotated[
        str | None,
        typer.Argument(help="Only this run (run id, or <task-id>/<run-id>).", show_default=False),
    ] = None,
    task_id: Annotated[
        str | None, typer.Option("--task", help="Only runs of this task id.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be removed; change nothing.")
    ] = False,
    plain: Annotated[
        bool,
        typer.Option(
            "--plain", help="One tab-separated line per item: run, kind, item, action, reason."
        ),
    ] = False,
) -> None:
    """Remove worktrees and merged subtask branches of finished runs (docs/retention.md).

    Keeps every result branch, and keeps and reports any worktree with uncommitted
    changes or unmerged commits, and every part of a run that is running, paused or can
    resume. Exit 1 when git refused a removal it planned.
    """
    if run is not None and task_id is not None:
        raise InvalidInputError("give a run or --task, not both")
    workspace = Workspace.open()
    if run is not None:
        items = collect_run(workspace, workspace.store.find(run), dry_run=dry_run)
    else:
        items = collect(workspace, dry_run=dry_run, task_id=task_id)
    if not items:
        console.print(f"no runs under {workspace.store.root}")
        return
    if plain:
        for item in items:
            fields = (item.run, item.kind.value, item.name, item.action.value, item.reason)
            console.file.write(
                "\t".join(terminal_text(f) for f in fields) + "\n"
            )  # rich expands tabs
    else:
        console.print(_table(items))
    console.print(_summary(items, dry_run=dry_run), highlight=False)
    failed = [i for i in items if i.action is Action.FAILED]
    if failed:
        raise OrchestratorError(f"{len(failed)} removal(s) refused by git; see the table")


def _table(items: list[Item]) -> Table:
    table = Table("run", "kind", "item", "action", "reason")
    for item in items:
        # Paths, branch names and git's messages are shown as written, never as markup.
        table.add_row(
            Text(item.run),
            item.kind.value,
            Text(terminal_text(item.name)),
            Text(item.action.value, style=_STYLE[item.action]),
            Text(terminal_text(item.reason)),
        )
    return table


def _summary(items: list[Item], *, dry_run: bool) -> str:
    counts = {action: sum(i.action is action for i in items) for action in Action}
    if dry_run:
        return f"dry run: {counts[Action.REMOVE]} to remove, {counts[Action.KEEP]} kept"
    return f"{counts[Action.REMOVED]} removed, {counts[Action.KEEP]} kept"
