"""The ``spec-guard`` command: stale, future or missing reviews, and code changed without a spec."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from orchestrator.exceptions import InvalidInputError, OrchestratorError
from orchestrator.specguard import check_specs
from schemas import SpecGuardReport

from ._console import console


def register(app: typer.Typer) -> None:
    app.command("spec-guard")(spec_guard)


def spec_guard(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Spec files or folders to check instead of the configured spec folders.",
            show_default=False,
        ),
    ] = None,
    base: Annotated[
        str | None,
        typer.Option(
            "--base",
            help="Git ref: files under the code paths changed since it need a spec change too.",
        ),
    ] = None,
    today: Annotated[
        str | None,
        typer.Option("--today", help="Check as if today were this day (YYYY-MM-DD; UTC)."),
    ] = None,
    max_age_days: Annotated[
        int | None,
        typer.Option(
            "--max-age-days",
            min=0,
            help="Days a review stays fresh \\[default: the settings' or 30].",
        ),
    ] = None,
    repo: Annotated[
        Path, typer.Option("--repo", help="The repository whose specs are checked.")
    ] = Path("."),
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Check specs: each active spec reviewed within the limit; code changes come with a spec.

    Settings: \\[tool.orchestrator.spec-guard] in the repository's pyproject.toml
    (spec-dirs, code-paths, max-age-days; docs/specs.md).
    Exits 1 on findings, 2 on an invalid front matter or option, 0 when all is well.
    """
    report = check_specs(
        repo, base=base, today=_day(today), max_age_days=max_age_days, paths=paths or ()
    )
    if as_json:
        console.print_json(report.model_dump_json())
    else:
        _print_report(report)
    if not report.ok:
        raise OrchestratorError(f"spec guard: {len(report.findings)} finding(s)")


def _day(text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInputError(f"--today {text!r} is not a day (YYYY-MM-DD)") from None


def _print_report(report: SpecGuardReport) -> None:
    if report.findings:
        table = Table("file", "rule", "detail")
        for finding in report.findings:
            table.add_row(finding.file, finding.rule.value, finding.detail)
        console.print(table)
    skipped = f", {len(report.skipped)} inactive skipped" if report.skipped else ""
    base = f", code changes since {report.base}" if report.base else ""
    verdict = "[green]ok[/green]" if report.ok else "[red]findings[/red]"
    console.print(
        f"{verdict} {len(report.checked)} active spec(s) checked{skipped}{base} "
        f"(today {report.today}, limit {report.max_age_days} days)"
    )
