"""What development, tests and the demo start in place of production parts.

Nothing of the product imports this package (``make lint`` checks it); only the
command line (``orchestrator serve``, ``stop``, ``demo``, ``dev vault``, ``cloud
serve``) and the tests do, and its dependencies are the ``devstack`` extra
(``pip install '.[devstack]'``).

- :mod:`devstack.stack`: the whole local stack of ``make serve`` (:class:`DevStack`,
  :func:`stop_stack`) and its parts one by one (``start_vault``, ``start_runs_api``,
  ``start_replay``, ``start_prefect_server``, ``spawn_worker``, ``deploy``, ``save_blocks``).
- :mod:`devstack._postgres` (through the stack): a PostgreSQL cluster for the Prefect
  server (:func:`spawn_postgres`); :func:`parse_database` reads `--database`;
  :func:`default_max_runs` sizes the work pool's concurrency limit to the machine.
- :mod:`devstack.vault`: an OpenBao dev server with demo secrets (``python -m devstack.vault``).
- :mod:`devstack.runs_api`: the reference Codex Cloud Runs API (``python -m devstack.runs_api``).
- :mod:`devstack.replay`: the replay model provider (``python -m devstack.replay``).
- :mod:`devstack.samples`: the sample repository, tasks and fixture sets (``examples/``).

Every process is started and stopped through :mod:`orchestrator.supervisor`; every
ASGI server runs in one harness (:class:`UvicornThread`); foreground servers stop on
SIGINT and SIGTERM (:func:`stop_signals`).
"""

from ._admission import default_max_runs
from ._database import SQLITE, Database, parse_database, url_has_password
from ._foreground import StopRequest, stop_signals
from ._forkserver import forkserver_socket
from ._parts import (
    RealModel,
    Starting,
    model_key_warning,
    read_cloud_token,
    read_secret_id,
    replay_codex_config,
    run_environ,
    spawn_part,
    spawn_replay,
    spawn_runs_api,
    start_replay,
    start_runs_api,
    start_vault,
    vault_settings,
)
from ._postgres import Postgres, postgres_bin, spawn_postgres
from ._prefect import (
    BLOCK_NAME,
    CLOUD_WORKSPACE,
    DEFAULT_PORT,
    PREFECT_HOME_DIR,
    PREFECT_SERVER_TIMEOUT,
    WORK_POOL,
    create_work_pool,
    deploy,
    deployment_names,
    nightly_schedule,
    prefect_api,
    save_blocks,
    spawn_prefect_server,
    spawn_worker,
    start_prefect_server,
)
from ._process import ServerProcess
from ._records import ServiceRecord, StackInfo, StackState, read_stack
from ._uvicorn import LOOPBACK, UvicornThread, free_port
from .samples import (
    SAMPLE_REPO,
    SAMPLE_TASK,
    examples_dir,
    fixture_set,
    prepare_sample_repo,
    sample_task,
)
from .stack import PROJECT_DIR_ENV, DevStack, find_project_dir, stack_processes, stop_stack

__all__ = [
    "BLOCK_NAME",
    "CLOUD_WORKSPACE",
    "DEFAULT_PORT",
    "LOOPBACK",
    "PREFECT_HOME_DIR",
    "PREFECT_SERVER_TIMEOUT",
    "PROJECT_DIR_ENV",
    "SAMPLE_REPO",
    "SAMPLE_TASK",
    "SQLITE",
    "WORK_POOL",
    "Database",
    "DevStack",
    "Postgres",
    "RealModel",
    "ServerProcess",
    "ServiceRecord",
    "StackInfo",
    "StackState",
    "Starting",
    "StopRequest",
    "UvicornThread",
    "create_work_pool",
    "default_max_runs",
    "deploy",
    "deployment_names",
    "examples_dir",
    "find_project_dir",
    "fixture_set",
    "forkserver_socket",
    "free_port",
    "model_key_warning",
    "nightly_schedule",
    "parse_database",
    "postgres_bin",
    "prefect_api",
    "prepare_sample_repo",
    "read_cloud_token",
    "read_secret_id",
    "read_stack",
    "replay_codex_config",
    "run_environ",
    "sample_task",
    "save_blocks",
    "spawn_part",
    "spawn_postgres",
    "spawn_prefect_server",
    "spawn_replay",
    "spawn_runs_api",
    "spawn_worker",
    "stack_processes",
    "start_prefect_server",
    "start_replay",
    "start_runs_api",
    "start_vault",
    "stop_signals",
    "stop_stack",
    "url_has_password",
    "vault_settings",
]
