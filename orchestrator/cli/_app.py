"""The typer application, its error handling, and the registration of every command group."""

from __future__ import annotations

import sys

import typer
from rich.markup import escape

from orchestrator.exceptions import InvalidInputError, OrchestratorError

from . import (
    _approvals,
    _cloud,
    _core,
    _demo,
    _dev,
    _doctor,
    _gc,
    _library,
    _run,
    _serve,
    _setup,
    _specs,
)
from ._console import err_console

app = typer.Typer(
    name="orchestrator",
    help="Run teams of Codex coding agents as Prefect pipelines: plan, build, test, review.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
_core.register(app)
_run.register(app)
_approvals.register(app)
_cloud.register(app)
_dev.register(app)
_demo.register(app)
_doctor.register(app)
_serve.register(app)
_setup.register(app)
_specs.register(app)
_library.register(app)
_gc.register(app)

EXIT_FAILURE, EXIT_BAD_INPUT = 1, 2


def main() -> None:
    """Console-script entry point: run the app, mapping our errors to exit codes.

    Typer's standalone mode already maps usage errors to exit code 2 and ``--help``
    to 0; what reaches us here are the errors our commands raise.
    """
    try:
        app()
    except InvalidInputError as exc:
        err_console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        sys.exit(EXIT_BAD_INPUT)
    except OrchestratorError as exc:
        err_console.print(f"[red]failed:[/red] {escape(str(exc))}", highlight=False)
        sys.exit(EXIT_FAILURE)
