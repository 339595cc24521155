"""Commands on task files, runs and schemas: validate, runs, show, schemas export."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from orchestrator.budget import DAY_SCOPES, day_usages, wall_seconds
from orchestrator.exceptions import ManifestCorruptError, OrchestratorError
from orchestrator.runstore import RunRef, load_manifest
from orchestrator.taskspec import load_task_spec, resolve_repo
from orchestrator.usage import cost_text, usage_line
from orchestrator.workspace import Workspace
from schemas import DOCUMENTS, PhaseName, RunManifest, StepStatus, render_schema, schema_path

from ._console import console

DEFAULT_BLOCK = "default"
"""The block name every command uses unless told otherwise."""

schemas_app = typer.Typer(help="The JSON Schema files of every document.", no_args_is_help=True)

TaskArg = Annotated[Path, typer.Argument(help="Task spec file (YAML or JSON).", show_default=False)]
RunArg = Annotated[str, typer.Argument(help="Run id, or <task-id>/<run-id>.", show_default=False)]


def register(app: typer.Typer) -> None:
    app.command()(validate)
    app.command()(runs)
    app.command()(show)
    app.add_typer(schemas_app, name="schemas")


def validate(task: TaskArg) -> None:
    """Check a task spec file; exit 2 with the file, field and reason when it is invalid."""
    spec = load_task_spec(task)
    repo = resolve_repo(spec, task)
    subtasks = f"{len(spec.subtasks)} fixed subtasks" if spec.subtasks else "planner splits"
    mode = "parallel" if spec.execution.parallel else "mcp"
    console.print(f"[green]ok[/green] {task}: task '{spec.id}' ({subtasks}, mode {mode})")
    console.print(f"   target repository: {repo}")


def runs(
    task_id: Annotated[
        str | None, typer.Option("--task", help="Only runs of this task id.")
    ] = None,
) -> None:
    """List the runs under .runs/ as a table, oldest first."""
    workspace = Workspace.open()
    refs = [r for r in workspace.store.list_runs() if task_id in (None, r.task_id)]
    if not refs:
        console.print(f"no runs under {workspace.store.root}")
        return
    console.print(_runs_table(refs, width=console.width))


def _runs_table(refs: list[RunRef], *, width: int) -> Table:
    """The run id is whole on one line whenever it fits (people copy it); the rest folds."""
    run_width = max(len(ref.run_id) for ref in refs)
    whole = run_width <= width // 2
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("task", overflow="fold")
    table.add_column("run", no_wrap=whole, min_width=run_width if whole else None)
    for name in ("status", "mode", "phase", "sync", "updated (UTC)"):
        table.add_column(name, overflow="fold")
    for ref in refs:
        table.add_row(*_run_row(ref.task_id, ref.run_id, ref.manifest_path))
    return table


def _run_row(task_id: str, run_id: str, path: Path) -> list[str]:
    try:
        manifest = load_manifest(path)
    except ManifestCorruptError:
        return [task_id, run_id, "[red]corrupt manifest[/red]", "", "", "", ""]
    sync = manifest.sync.state.value if manifest.sync else "-"
    return [
        task_id,
        run_id,
        manifest.status.value,
        manifest.mode.mode.value,
        _current_phase(manifest),
        sync,
        f"{manifest.updated_at:%m-%d %H:%M}",
    ]


def _current_phase(manifest: RunManifest) -> str:
    """The last phase that started, and its status (``show`` has every phase)."""
    started = [
        name for name in PhaseName if manifest.phases.get(name).status is not StepStatus.PENDING
    ]
    if not started:
        return "-"
    return f"{started[-1].value} {manifest.phases.get(started[-1]).status.value}"


def show(
    run: RunArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifest as JSON.")] = False,
) -> None:
    """Show one run's manifest: status, deployment, phases, usage, budget and the day's
    usage, approvals, artifacts."""
    workspace = Workspace.open()
    ref = workspace.store.find(run)
    manifest = workspace.store.read(ref.task_id, ref.run_id)
    if as_json:
        console.print_json(manifest.model_dump_json())
        return
    console.print(f"[bold]{manifest.task_id}/{manifest.run_id}[/bold]  status: {manifest.status}")
    if manifest.status_reason:
        console.print(f"reason: {manifest.status_reason}")
    console.print(f"mode: {manifest.mode.mode} ({manifest.mode.reason})  env: {manifest.env}")
    if manifest.deployment is not None:
        deployment = manifest.deployment
        console.print(f"deployment: {deployment.name} ({deployment.id})", highlight=False)
    console.print(f"manifest: {ref.manifest_path}")
    console.print(_phase_table(manifest))
    console.print(f"usage: {usage_line(manifest.usage)}", highlight=False)
    console.print(f"wall time: {int(wall_seconds(manifest))}s (without waits for a person)")
    if manifest.budget is not None:
        console.print(f"budget: {_limits_text(manifest)} ({manifest.budget.source})")
        for day in day_usages(workspace.store, manifest):
            console.print(f"today: {usage_line(day.usage)} by {day.describe()}", highlight=False)
    if manifest.approvals:
        console.print(_approval_table(manifest))
    if manifest.artifacts:
        console.print(_artifact_table(manifest))
    for error in manifest.errors:
        console.print(
            f"[red]error[/red] {error.phase or ''} {error.step_id or ''}: {error.message}"
        )


def _phase_table(manifest: RunManifest) -> Table:
    table = Table(
        "phase", "step", "role", "status", "commands (exit)", "model", "tokens", "cost", "ms"
    )
    for name in ("plan", "build", "test", "review"):
        phase = getattr(manifest.phases, name)
        for step in phase.steps:
            commands = ", ".join(f"{c.command[:40]} ({c.exit_code})" for c in step.commands)
            table.add_row(
                name,
                step.id,
                step.role.value,
                step.status.value,
                commands,
                step.model or "-",
                str(step.tokens.total_tokens),
                cost_text(step.cost_usd),
                str(step.duration_ms or ""),
            )
        usage = phase.usage
        total = (str(usage.tokens.total_tokens), cost_text(usage.cost_usd))
        label = f"{name} total" if phase.steps else name
        table.add_row(label, "", "", phase.status.value, "", "", *total, "")
    return table


def _limits_text(manifest: RunManifest) -> str:
    assert manifest.budget is not None
    limits = manifest.budget.limits.model_dump(exclude_none=True)
    texts = [f"{name} {value}" for name, value in limits.items()]
    for scope in DAY_SCOPES:
        of_scope = manifest.budget.of(scope).model_dump(exclude_none=True)
        texts += [f"{scope.prefix}{name} {value}" for name, value in of_scope.items()]
    return ", ".join(texts) or "no limit"


def _approval_table(manifest: RunManifest) -> Table:
    table = Table("gate", "decision", "approver", "channel", "reason", "decided (UTC)")
    for a in manifest.approvals:
        table.add_row(
            a.id,
            a.decision.value if a.decision else "[yellow]waiting[/yellow]",
            a.approver or "",
            a.channel.value if a.channel else "",
            a.reason or "",
            f"{a.decided_at:%Y-%m-%d %H:%M:%S}" if a.decided_at else "",
        )
    return table


def _artifact_table(manifest: RunManifest) -> Table:
    table = Table("artifact", "kind", "bytes", "sha256")
    for artifact in manifest.artifacts:
        table.add_row(artifact.name, artifact.kind, str(artifact.size), artifact.sha256[:16])
    return table


@schemas_app.command("export")
def export_schemas(
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 if a committed file differs; write nothing.")
    ] = False,
) -> None:
    """Generate schemas/*.schema.json from the models (or check them for drift)."""
    drifted = []
    for name in sorted(DOCUMENTS):
        path, text = schema_path(name), render_schema(name)
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        drifted.append(path)
        if not check:
            path.write_text(text, encoding="utf-8")
    if check and drifted:
        names = ", ".join(p.name for p in drifted)
        raise OrchestratorError(
            f"schema files drift from the models: {names}; run 'orchestrator schemas export'"
        )
    verb = "differ" if check else "written"
    console.print(
        f"{len(DOCUMENTS)} schemas checked, {len(drifted)} {verb} ({schema_path('x').parent})"
    )
