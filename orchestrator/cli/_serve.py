"""``orchestrator serve`` and ``orchestrator stop``: the local dev stack (``make serve``).

``serve`` starts everything detached (see :mod:`devstack.stack`), prints where each
part is, and returns; ``stop`` stops exactly the processes it recorded, by PID. Both
work on a state folder (default ``.serve``). No secret is printed. The dev stack is
imported when a command runs, so importing the CLI does not import it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from orchestrator.exceptions import InvalidInputError

from ._console import console

if TYPE_CHECKING:
    from devstack import Database, RealModel, StackInfo

DEFAULT_PORT = 4200
DATABASE_ENV = "ORCHESTRATOR_PREFECT_DATABASE"

StateDirOption = Annotated[
    Path, typer.Option("--state-dir", help="Folder for pids, logs, databases and the Prefect home.")
]


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(stop)


def serve(
    ctx: typer.Context,
    state_dir: StateDirOption = Path(".serve"),
    port: Annotated[int, typer.Option("--port", help="Port of the Prefect server and UI.")] = (
        DEFAULT_PORT
    ),
    home: Annotated[
        Path | None,
        typer.Option(
            "--home",
            envvar="ORCHESTRATOR_HOME",
            help="Where runs land (.runs/, out/, work/); default: the current folder.",
        ),
    ] = None,
    model_url: Annotated[
        str | None,
        typer.Option(
            "--model-url",
            envvar="ORCHESTRATOR_MODEL_URL",
            help="A real Responses API base URL instead of the replay provider.",
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option("--model", envvar="ORCHESTRATOR_MODEL", help="The model, with --model-url."),
    ] = None,
    project_dir: Annotated[
        Path | None,
        typer.Option(
            "--project-dir",
            envvar="ORCHESTRATOR_PROJECT_DIR",
            help="The folder whose prefect.yaml is deployed and where the worker runs; "
            "default: the one holding the flows package (this checkout).",
        ),
    ] = None,
    database: Annotated[
        str,
        typer.Option(
            "--database",
            envvar=DATABASE_ENV,
            help="The Prefect server's database: sqlite (default), postgres (a PostgreSQL "
            "cluster in the state folder, Debian's postgresql) or a postgresql:// URL of "
            f"yours (one with a password only through {DATABASE_ENV}).",
        ),
    ] = "sqlite",
    max_runs: Annotated[
        int | None,
        typer.Option(
            "--max-runs",
            envvar="ORCHESTRATOR_MAX_RUNS",
            min=0,
            help="Flow runs the work pool runs at once; more wait Scheduled (Late) until a "
            "slot frees. Default: what this machine holds (half a core and 150 MB a run); "
            "0: no limit.",
        ),
    ] = None,
    notify_webhook: Annotated[
        str | None,
        typer.Option(
            "--notify-webhook",
            envvar="ORCHESTRATOR_NOTIFY_WEBHOOK",
            help="POST a notification here (JSON: subject, body, text) when a run waits for "
            "a person and before a gate's deadline; default: no notifications.",
        ),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            envvar="ORCHESTRATOR_SERVE_WORKERS",
            min=0,
            help="Also start this many subtask workers, each with its own ORCHESTRATOR_HOME "
            "and queue on the 'subtasks' pool, a bare git remote of the sample repository "
            "and a shared result folder: parallel runs then build each subtask there "
            "(docs/deployments.md, 'Many machines'). Default 0: in the run's own process.",
        ),
    ] = 0,
) -> None:
    """Start the local dev stack: Prefect server and UI, worker, Vault, Runs API, model.

    Also creates the work pool, saves the blocks, deploys prefect.yaml and prepares the
    sample repository. Returns once the UI answers and the worker is online; stop
    everything with 'orchestrator stop'.
    """
    from devstack import DevStack, default_max_runs

    real = _real_model(model_url, model)
    chosen = _database(database, source=ctx.get_parameter_source("database"))
    limit = default_max_runs() if max_runs is None else max_runs or None
    stack = DevStack(
        state_dir=state_dir,
        home=home or Path.cwd(),
        port=port,
        model=real,
        project_dir=project_dir,
        database=chosen,
        max_runs=limit,
        notify_webhook=notify_webhook,
        workers=workers,
    )
    _say(f"starting the dev stack in {state_dir} (logs in {state_dir / 'logs'}) ...")
    info = stack.start()
    _print_info(info)
    _say(f"notifications: {notify_webhook or 'off (give --notify-webhook URL)'}")


def stop(state_dir: StateDirOption = Path(".serve")) -> None:
    """Stop every process 'orchestrator serve' started (recorded in the state folder)."""
    from devstack import stop_stack

    stopped = stop_stack(state_dir)
    if not stopped:
        _say(f"nothing running from {state_dir}")
        return
    names = ", ".join(f"{s.name} (pid {s.pid})" for s in stopped)
    _say(f"stopped {names}")


def _database(value: str, *, source: object) -> Database:
    """``--database`` parsed; a password given on the command line is refused (``ps`` shows it)."""
    from devstack import parse_database, url_has_password

    # typer keeps its own copy of click: its ParameterSource enum, compared by name
    if url_has_password(value) and getattr(source, "name", "") == "COMMANDLINE":
        raise InvalidInputError(
            f"--database: a URL with a password does not go on the command line (every user "
            f"of the machine can read it there); export {DATABASE_ENV}=<URL> instead"
        )
    return parse_database(value)


def _real_model(model_url: str | None, model: str | None) -> RealModel | None:
    from devstack import RealModel, model_key_warning

    if model_url is None:
        if model is not None:
            raise InvalidInputError("--model needs --model-url (the replay provider has one model)")
        return None
    if not model:
        raise InvalidInputError("--model-url needs --model (e.g. --model gpt-5-codex)")
    warning = model_key_warning()
    if warning:
        _say(f"warning: {warning}")
    return RealModel(base_url=model_url, model=model)


def _print_info(info: StackInfo) -> None:
    rows = [
        ("Prefect UI", info.ui_url),
        ("Prefect API", f"{info.api_url}   (export PREFECT_API_URL={info.api_url})"),
        ("database", info.database),
        ("work pool", f"{info.work_pool} (process), worker online, {_limit(info)}"),
        ("flow runs", _flow_runs(info)),
        ("subtasks", _subtask_workers(info)),
        ("deployments", ", ".join(info.deployments)),
        ("nightly", info.nightly_schedule or "(no schedule)"),
        ("Vault (dev)", f"{info.vault_address}  env {info.env}; secrets in memory"),
        ("Runs API", f"{info.runs_api_url}  workspace {info.cloud_workspace}"),
        ("model", f"{info.model} at {info.model_url}" + _fixtures(info)),
        ("sample repo", str(info.sample_repo)),
        ("run data", f"{info.home}/.runs  (orchestrator runs / show RUN)"),
    ]
    _say(f"dev stack ready in {info.started_in_seconds:.1f} s:")
    for label, value in rows:
        _say(f"  {label:<12} {value}")
    _say("Run the sample: open the UI > Deployments > pipeline > Run > Custom run, or")
    _say(f"  PREFECT_API_URL={info.api_url} prefect deployment run pipeline/pipeline")
    _say(f"Prefect UI: {info.ui_url}")
    _say("Stop everything with: make stop")


def _flow_runs(info: StackInfo) -> str:
    from devstack import forkserver_socket

    return f"forked from the fork server at {forkserver_socket(info.state_dir)}"


def _subtask_workers(info: StackInfo) -> str:
    if not info.subtask_workers:
        return "built in each run's own process (--workers N: on N workers)"
    remote = info.state_dir / "remote.git"
    return f"on {info.subtask_workers} workers of pool subtasks, git remote {remote}"


def _limit(info: StackInfo) -> str:
    if info.max_runs is None:
        return "no limit on runs at once"
    return f"at most {info.max_runs} runs at once (--max-runs)"


def _fixtures(info: StackInfo) -> str:
    return f" (replay fixtures {info.replay_fixtures})" if info.replay_fixtures else ""


def _say(text: str) -> None:
    """Print one line as is: no wrapping (commands must paste whole), no markup."""
    console.print(text, soft_wrap=True, markup=False)
