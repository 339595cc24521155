"""Development helpers: ``orchestrator dev vault`` runs a local OpenBao dev server.

What is printed and written, and why: the address, PIDs and each environment's AppRole
role_id are printed (a role_id names a role; it logs in nobody without a secret_id).
Secret values are never printed. Each environment's secret_id is written to a mode-0600
``approle-<env>.env`` file, because the processes that log in with it (workers, flow
runs) start later and read it from their environment; that file is removed when the
server stops. The root token never leaves the process that started the server.

The server itself is :mod:`devstack.vault` (imported when a command runs, so importing
the CLI does not import the dev stack).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import typer

from orchestrator.exceptions import DevStackError, InvalidInputError
from orchestrator.vault_settings import (
    DEFAULT_KV_MOUNT,
    DEFAULT_PATH_TEMPLATE,
    DEFAULT_SECRET_ID_ENV,
)

from ._console import console

dev_app = typer.Typer(help="Local development servers (OpenBao dev Vault).", no_args_is_help=True)

EnvOption = Annotated[
    list[str] | None,
    typer.Option("--env", help="Environment to create secrets and an AppRole for (repeatable)."),
]
PortOption = Annotated[
    int | None, typer.Option("--port", help="Loopback port (default: a free one).")
]
StateDirOption = Annotated[
    Path | None,
    typer.Option(
        "--state-dir",
        help="Folder for the pid file, state and secret_id files (needed with --background).",
    ),
]


def register(app: typer.Typer) -> None:
    app.add_typer(dev_app, name="dev")


@dev_app.command("vault")
def vault(
    env: EnvOption = None,
    port: PortOption = None,
    background: Annotated[
        bool, typer.Option("--background", help="Start it detached and return (make serve).")
    ] = False,
    state_dir: StateDirOption = None,
    save_blocks: Annotated[
        bool,
        typer.Option("--save-blocks", help="Save a 'vault-<env>' Vault credentials block per env."),
    ] = False,
) -> None:
    """Start an OpenBao dev server with demo secrets and one AppRole per environment.

    In the foreground it runs until Ctrl-C. With --background it returns once the
    server is ready; stop it with 'orchestrator dev vault-stop --state-dir DIR'.
    Secret values are random, except where ORCHESTRATOR_DEV_VAULT_<KEY> is set
    (e.g. ORCHESTRATOR_DEV_VAULT_CLOUD_TOKEN); they are never printed.
    """
    envs = env or ["dev"]
    if background:
        if state_dir is None:
            raise InvalidInputError("--background needs --state-dir (where the pid file goes)")
        from devstack.vault import secret_id_file, start_background

        state = start_background(state_dir, envs=envs, port=port)
        files = {e: secret_id_file(state_dir.resolve(), e) for e in envs}
        _print_started(state.address, state.server_pid, state.role_ids, files)
        _maybe_save_blocks(save_blocks, state.address, state.role_ids)
        _say(f"Stop it with: orchestrator dev vault-stop --state-dir {state_dir}")
        return
    _run_foreground(envs, port=port, state_dir=state_dir, save_blocks=save_blocks)


@dev_app.command("vault-stop")
def vault_stop(
    state_dir: Annotated[
        Path, typer.Option("--state-dir", help="The folder given to 'dev vault --background'.")
    ],
) -> None:
    """Stop a dev Vault started with --background, and remove its files."""
    from devstack.vault import stop_background

    stopped = stop_background(state_dir)
    _say("dev Vault stopped" if stopped else f"no dev Vault running from {state_dir}")


def _run_foreground(
    envs: list[str], *, port: int | None, state_dir: Path | None, save_blocks: bool
) -> None:
    """Run until SIGINT or SIGTERM (or until the server dies), then stop it by PID."""
    from devstack import stop_signals
    from devstack.vault import DevVault, demo_secrets

    values = {e: demo_secrets(e, environ=os.environ) for e in envs}
    with stop_signals() as stop, DevVault(envs=envs, port=port, values=values) as server:
        directory = state_dir or server.home
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        files = server.write_secret_id_files(directory)
        try:
            role_ids = {e: server.approle(e).role_id for e in envs}
            _print_started(server.address, server.pid, role_ids, files)
            _maybe_save_blocks(save_blocks, server.address, role_ids)
            _say("Press Ctrl-C to stop (the server keeps nothing).")
            if stop.wait(alive=lambda: server.running) is None:
                code = server.exit_code
                raise DevStackError(
                    f"the dev Vault exited on its own (code {code})", service="vault"
                )
            _say("stopping")
        finally:
            for path in files.values():
                path.unlink(missing_ok=True)


def _print_started(
    address: str, pid: int, role_ids: Mapping[str, str], files: Mapping[str, Path]
) -> None:
    _say(f"OpenBao dev server at {address} (pid {pid}; in memory only)")
    for env, role_id in role_ids.items():
        path = f"{DEFAULT_KV_MOUNT}/{DEFAULT_PATH_TEMPLATE.format(env=env)}"
        _say(f"  env {env}: demo secrets at {path} (values not shown)")
        _say(f"    AppRole role_id {role_id}; it can read only that path")
        _say(f"    secret_id in {files[env]} (mode 0600, removed on stop)")
    _say("Point the Vault credentials block at it:")
    for env, role_id in role_ids.items():
        _say(
            '  python -c "from blocks import VaultCredentials; VaultCredentials('
            f"address='{address}', auth_method='approle', role_id='{role_id}')"
            f".save('{_block_name(env)}', overwrite=True)\""
        )
    _say(f"and give the processes that run flows {DEFAULT_SECRET_ID_ENV}:")
    for env in role_ids:
        _say(f"  . {files[env]}   # env {env}")


def _maybe_save_blocks(save: bool, address: str, role_ids: Mapping[str, str]) -> None:
    if not save:
        return
    from pydantic import SecretStr

    from blocks.vault import VaultCredentials

    for env, role_id in role_ids.items():
        block = VaultCredentials(address=address, auth_method="approle", role_id=SecretStr(role_id))
        block.save(_block_name(env), overwrite=True)
        _say(f"saved block {block.get_block_type_slug()}/{_block_name(env)}")


def _say(text: str) -> None:
    """Print one line as is: no wrapping (commands must paste whole), no markup."""
    console.print(text, soft_wrap=True, markup=False)


def _block_name(env: str) -> str:
    """A Prefect block name (lowercase letters, digits, dashes) for ``env``."""
    return "vault-" + "".join(c if c.isalnum() else "-" for c in env.lower())
