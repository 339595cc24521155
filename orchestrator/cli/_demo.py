"""``orchestrator demo``: the sample task end to end, offline, unattended.

It starts what a run needs on loopback (an OpenBao dev Vault with demo secrets, the
reference Runs API server, the replay model provider), saves the blocks, prepares the
sample git repository under ``work/``, runs the pipeline in this process (Prefect's
ephemeral mode unless PREFECT_API_URL names a server), prints what happened and where
the manifest is, and stops everything it started.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from orchestrator.exceptions import OrchestratorError
from orchestrator.settings import Settings
from orchestrator.workspace import Workspace
from schemas import RunManifest, RunStatus

from ._console import console
from ._run import print_outcome, run_pipeline

DEMO_TASK = Path(__file__).resolve().parents[2] / "examples" / "tasks" / "add-text-helpers.yaml"


def register(app: typer.Typer) -> None:
    app.command()(demo)


def demo(
    task: Annotated[Path, typer.Option(help="Sample task to run.")] = DEMO_TASK,
    state_dir: Annotated[
        Path | None, typer.Option(help="Where the demo's servers keep state (default work/demo).")
    ] = None,
) -> None:
    """Run a sample task end to end offline (replay model, OpenBao, reference Runs API)."""
    home = Settings().home.resolve()
    state = (state_dir or home / "work" / "demo").resolve()
    if "PREFECT_API_URL" not in os.environ:  # ephemeral mode: keep its database with the demo
        os.environ.setdefault("PREFECT_HOME", str(state / "prefect-home"))
        os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from . import devstack

    try:
        repo, cloud_url = _start(devstack, state, home)
        run_id = _run(task, repo)
    finally:
        console.print("stopping the demo's servers ...")
        devstack.stop_stack(state)
    manifest = print_outcome(Workspace.open(Settings(home=home)), run_id)
    _explain(manifest, repo, cloud_url)
    if manifest.status is not RunStatus.SUCCEEDED:
        raise OrchestratorError(f"the demo run ended {manifest.status.value}")


def _start(devstack: Any, state: Path, home: Path) -> tuple[Path, str]:
    console.print(f"[bold]1/4[/bold] OpenBao dev Vault with demo secrets ({state})")
    vault = devstack.start_vault(state)
    console.print(f"      {vault.address}")
    console.print("[bold]2/4[/bold] reference Codex Cloud Runs API server")
    runs_api = devstack.start_runs_api(state, token=devstack.read_cloud_token(state, vault))
    console.print(f"      {runs_api.url}")
    console.print("[bold]3/4[/bold] replay model provider (scripted model turns, offline)")
    replay = devstack.start_replay(state)
    console.print(f"      {replay.url}")
    os.environ.update(devstack.run_environ(state, home=home))  # the secret_id stays in memory
    devstack.save_blocks(
        vault_address=vault.address,
        role_id=vault.role_ids["dev"],
        codex=devstack.replay_codex_config(replay),
        cloud_url=runs_api.url,
    )
    repo = home / "work" / "sample-repo"
    shutil.rmtree(repo, ignore_errors=True)  # every demo starts from the pristine sample
    devstack.prepare_sample_repo(repo)
    console.print(f"[bold]4/4[/bold] sample repository {repo}")
    return repo, runs_api.url


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
