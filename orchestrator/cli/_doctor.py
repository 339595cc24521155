"""``orchestrator doctor``: which agent backends are installed, their codex versions, and
whether codex's sandbox works for each."""

from __future__ import annotations

import anyio
import typer
from rich.markup import escape
from rich.table import Table

from orchestrator.exceptions import OrchestratorError

from ._console import console


def register(app: typer.Typer) -> None:
    app.command()(doctor)


def doctor() -> None:
    """Show both agent backends (mcp, app-server): executable, codex version, sandbox.

    Exits 1 when no backend is usable.
    """
    from agents.doctor import check_backends

    statuses = anyio.run(check_backends)
    table = Table("backend", "version", "sandbox")
    table.add_column("codex", overflow="fold")
    for status in statuses:
        colour = "green" if status.ok else "red"
        table.add_row(
            status.backend,
            escape(status.version or "-"),
            f"[{colour}]{escape(status.sandbox)}[/{colour}]",
            escape(status.executable or "-"),
        )
    console.print(table)
    if not any(status.ok for status in statuses):
        raise OrchestratorError("no agent backend is usable here")
