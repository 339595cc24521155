"""The ``library`` commands: list, show, add and bump entries of the learning library."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.table import Table

from orchestrator import library_drafts
from orchestrator.library import Library, load_entry_file
from orchestrator.literal import terminal_text
from orchestrator.settings import Settings
from schemas import LibraryEntry, LibraryKind

from ._approvals import default_approver
from ._console import console

library_app = typer.Typer(
    help="The learning library: versioned codemods, linters and templates (docs/library.md).",
    no_args_is_help=True,
)

IndexOption = Annotated[
    Path | None,
    typer.Option(
        "--index",
        help="The index file \\[default: ORCHESTRATOR_LIBRARY_INDEX, else "
        "<ORCHESTRATOR_HOME>/library/index.yaml].",
        show_default=False,
    ),
]
EntryFileArg = Annotated[
    Path, typer.Argument(help="The entry as a YAML or JSON file.", show_default=False)
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def register(app: typer.Typer) -> None:
    app.add_typer(library_app, name="library")


def _library(index: Path | None) -> Library:
    return Library.of(Settings(), index)


@library_app.command("list")
def list_entries(
    tag: Annotated[
        list[str] | None, typer.Option("--tag", help="Only entries with this tag (repeatable).")
    ] = None,
    kind: Annotated[LibraryKind | None, typer.Option("--kind", help="Only this kind.")] = None,
    every: Annotated[
        bool, typer.Option("--all", help="Every recorded version, not only the highest.")
    ] = False,
    as_json: JsonOption = False,
    index: IndexOption = None,
) -> None:
    """List entries (each name's highest version) as a table."""
    library = _library(index)
    entries = library.find(tags=tag or (), kind=kind, every=every)
    if as_json:
        console.print_json(data=[e.model_dump(mode="json") for e in entries])
        return
    if not entries:
        console.print(f"no entries in {library.index_path}")
        return
    # The entry (name@version) is what a person copies: never cut or folded.
    table = Table("entry", "kind (tool)", "tags", "description")
    table.columns[0].no_wrap = True
    for e in entries:
        table.add_row(
            e.ref,
            f"{e.kind.value} ({e.tool.value})",
            ", ".join(e.tags),
            e.description,
        )
    console.print(table)


@library_app.command("show")
def show_entry(
    pin: Annotated[
        str,
        typer.Argument(help="name, name@^1.2, name@~1.2.3 or name@1.2.3.", show_default=False),
    ],
    as_json: JsonOption = False,
    index: IndexOption = None,
) -> None:
    """Show the highest version of an entry that matches the pin."""
    entry = _library(index).resolve(pin)
    if as_json:
        console.print_json(entry.model_dump_json())
        return
    console.print(f"[bold]{entry.ref}[/bold]", highlight=False)
    console.print(_yaml(entry), end="", markup=False, highlight=False)


@library_app.command("add")
def add_entry(
    entry_file: EntryFileArg,
    replace: Annotated[
        bool,
        typer.Option("--replace", help="Replace the same name@version, while no run has used it."),
    ] = False,
    index: IndexOption = None,
) -> None:
    """Record a new entry. Its script (if any) must be in the index's folder."""
    library = _library(index)
    entry = library.add(load_entry_file(entry_file), replace=replace)
    console.print(f"[green]added[/green] {entry.ref} to {library.index_path}")


@library_app.command("bump")
def bump_entry(
    entry_file: EntryFileArg,
    breaking: Annotated[
        bool, typer.Option("--breaking", help="The change breaks users: needs a major bump.")
    ] = False,
    index: IndexOption = None,
) -> None:
    """Record a new version of an entry (the file holds it with its new version).

    A change to how it runs needs at least a minor bump; a breaking one (--breaking,
    another tool or kind, a language dropped) a major one; anything else a patch.
    """
    library = _library(index)
    result = library.bump(load_entry_file(entry_file), breaking=breaking)
    console.print(
        f"[green]bumped[/green] {result.previous.ref} -> {result.entry.version} "
        f"(needed: {result.required.name.lower()}) in {library.index_path}"
    )


@library_app.command("drafts")
def list_drafts(
    every: Annotated[bool, typer.Option("--all", help="Accepted drafts too.")] = False,
    as_json: JsonOption = False,
    index: IndexOption = None,
) -> None:
    """Drafts runs left for the library (a rejected plan or hand-over, a reviewer's
    request for changes), oldest first."""
    library = _library(index)
    drafts = library_drafts.list_drafts(library, every=every)
    if as_json:
        console.print_json(data=[d.model_dump(mode="json") for d in drafts])
        return
    if not drafts:
        console.print(f"no drafts in {library_drafts.drafts_dir(library)}")
        return
    table = Table("draft", "origin", "run", "reason", "accepted as")
    table.columns[0].no_wrap = True
    for d in drafts:
        table.add_row(
            d.id,
            d.origin.value,
            f"{d.task_id}/{d.run_id}",
            terminal_text(d.reason),
            d.accepted_as or "",
        )
    console.print(table)


@library_app.command("accept")
def accept_draft(
    draft: Annotated[str, typer.Argument(help="The draft's id (library drafts).")],
    entry_file: Annotated[
        Path,
        typer.Option(
            "--entry",
            help="The entry to record from it, as a YAML or JSON file.",
            show_default=False,
        ),
    ],
    approver: Annotated[
        str, typer.Option("--approver", help="Your name; default: your OS user.")
    ] = "",
    index: IndexOption = None,
) -> None:
    """Record an entry from a draft (add, or bump for a known name) and mark it accepted.

    Nothing enters the library from a draft without a person: the entry is yours.
    """
    library = _library(index)
    who = (approver or default_approver()).strip()
    entry = library_drafts.accept(library, draft, load_entry_file(entry_file), approver=who)
    console.print(f"[green]accepted[/green] {draft} as {entry.ref} in {library.index_path}")


def _yaml(entry: LibraryEntry) -> str:
    return yaml.safe_dump(entry.model_dump(mode="json", exclude_none=True), sort_keys=False)
