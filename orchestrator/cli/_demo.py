"""``orchestrator demo``: the sample task end to end, offline, unattended.

It starts what a run needs on loopback, each recorded and stopped by PID
(:mod:`devstack.stack`): a Prefect server of its own (unless PREFECT_API_URL names
one), an OpenBao dev Vault with demo secrets, the reference Runs API server and the
replay model provider. It saves the blocks, prepares the sample git repository under
``work/``, runs the pipeline in this process against that server, prints what happened
and where the manifest is, and stops everything it started.

Why a real server and not Prefect's ephemeral mode: a cold ephemeral server creates its
SQLite database and runs its migrations in about 20 s on a busy machine, and Prefect
gives it 20 s by default, so a newcomer's first demo failed more often than not. The
demo starts ``prefect server start`` itself and waits for ``/api/health`` with a
generous deadline, saying what it waits for.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from orchestrator.exceptions import OrchestratorError
from orchestrator.settings import Settings
from orchestrator.workspace import Workspace
from schemas import AgentBackend, RunManifest, RunStatus

from ._console import console
from ._run import print_outcome, run_pipeline

if TYPE_CHECKING:
    from devstack import Starting

STEPS = 5


def register(app: typer.Typer) -> None:
    app.command()(demo)


def demo(
    task: Annotated[
        Path | None,
        typer.Option(help="Task to run [default: the sample task add-text-helpers]."),
    ] = None,
    state_dir: Annotated[
        Path | None, typer.Option(help="Where the demo's servers keep state (default work/demo).")
    ] = None,
    backend: Annotated[
        AgentBackend,
        typer.Option(help="Agent backend: mcp (codex mcp-server) or app-server."),
    ] = "mcp",
) -> None:
    """Run a sample task end to end offline (replay model, OpenBao, reference Runs API)."""
    import devstack

    home = Settings().home.resolve()
    state = (state_dir or home / "work" / "demo").resolve()
    os.environ.setdefault("PREFECT_HOME", str(state / devstack.PREFECT_HOME_DIR))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    try:
        prefect = _spawn_prefect(state)
        parts = _start_parts(state, home)
        api_url = _wait_prefect(prefect)
        devstack.save_blocks(
            vault_address=parts.vault_address,
            role_id=parts.role_id,
            codex=devstack.replay_codex_config(parts.replay_url).model_copy(
                update={"backend": backend}
            ),
            cloud_url=parts.cloud_url,
            api_url=api_url,
        )
        with devstack.prefect_api(api_url):
            run_id = _run(task or devstack.sample_task(), parts.repo)
    finally:
        console.print("stopping the demo's servers ...")
        devstack.stop_stack(state)
    manifest = print_outcome(Workspace.open(Settings(home=home)), run_id)
    _explain(manifest, parts.repo, parts.cloud_url)
    if manifest.status is not RunStatus.SUCCEEDED:
        raise OrchestratorError(f"the demo run ended {manifest.status.value}")


@dataclass(frozen=True)
class _Parts:
    vault_address: str
    role_id: str
    cloud_url: str
    replay_url: str
    repo: Path


def _spawn_prefect(state: Path) -> Starting | None:
    """A Prefect server of the demo's own, starting (waited for last), unless one is named."""
    import devstack

    if os.environ.get("PREFECT_API_URL"):
        console.print(f"[bold]1/{STEPS}[/bold] Prefect API {os.environ['PREFECT_API_URL']}")
        return None
    console.print(f"[bold]1/{STEPS}[/bold] Prefect server (SQLite in {state / 'prefect-home'})")
    return devstack.spawn_prefect_server(state, port=devstack.free_port())


def _start_parts(state: Path, home: Path) -> _Parts:
    import devstack

    console.print(f"[bold]2/{STEPS}[/bold] OpenBao dev Vault with demo secrets ({state})")
    vault = devstack.start_vault(state)
    console.print(f"      {vault.address}")
    console.print(f"[bold]3/{STEPS}[/bold] reference Codex Cloud Runs API server")
    runs_api = devstack.start_runs_api(state, token=devstack.read_cloud_token(state, vault))
    console.print(f"      {runs_api.url}")
    console.print(f"[bold]4/{STEPS}[/bold] replay model provider (scripted model turns, offline)")
    replay = devstack.start_replay(state)
    console.print(f"      {replay.url}")
    os.environ.update(devstack.run_environ(state, home=home))  # the secret_id stays in memory
    repo = home / devstack.SAMPLE_REPO
    shutil.rmtree(repo, ignore_errors=True)  # every demo starts from the pristine sample
    devstack.prepare_sample_repo(repo)
    console.print(f"[bold]5/{STEPS}[/bold] sample repository {repo}")
    return _Parts(vault.address, vault.role_ids["dev"], runs_api.url, replay.url, repo)


def _wait_prefect(prefect: Starting | None) -> str | None:
    """The API URL of the demo's server once it answers /api/health (None: the one named)."""
    if prefect is None:
        return None
    console.print(
        f"waiting for the Prefect server (a first start creates its database and can take "
        f"a minute; giving it {prefect.timeout:.0f} s; log {prefect.record.log}) ..."
    )
    started = time.monotonic()
    ui_url = prefect.wait().url
    console.print(f"      {ui_url} (ready after {time.monotonic() - started:.0f} s more)")
    return f"{ui_url}/api"


def _run(task: Path, repo: Path) -> str:
    console.print(f"\n[bold]running {task.name}[/bold] against {repo} ...\n")
    return run_pipeline(task_file=str(task.resolve()), repo=str(repo))


def _explain(manifest: RunManifest, repo: Path, cloud_url: str) -> None:
    """What the agents did, command by command, and where everything landed."""
    table = Table("step", "role", "command", "exit", title="What the agents ran")
    for phase in ("plan", "build", "test", "review"):
        for step in getattr(manifest.phases, phase).steps:
            for command in step.commands or []:
                table.add_row(
                    step.id, step.role.value, command.command[:70], str(command.exit_code)
                )
    console.print(table)
    result = manifest.result
    if result and result.branch:
        console.print(f"result branch: {result.branch} in {repo}")
        console.print(f"  see it:  git -C {repo} diff main..{result.branch}")
    console.print(
        f"cloud sync: {manifest.sync.state.value if manifest.sync else 'not done'}"
        f" (the reference Runs API at {cloud_url} was stopped with the demo)"
    )
    console.print("next: 'orchestrator runs' lists runs; 'orchestrator show RUN' shows one")
