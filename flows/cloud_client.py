"""An environment's Runs API client: where the API is and its token, for flows and the CLI.

One place answers where each part comes from; the first source that has it wins:

- the endpoint (URL, workspace): ``ORCHESTRATOR_CLOUD_URL`` and ``_WORKSPACE``, else
  the ``CodexCloudEndpoint`` block ``cloud_block``;
- the bearer token: ``ORCHESTRATOR_CLOUD_TOKEN``, else key ``token_key`` of the
  environment's Vault secret, read by the credential broker;
- Vault, for that: ``ORCHESTRATOR_VAULT_ADDRESS`` (with ``ORCHESTRATOR_VAULT_ROLE_ID``
  and the other ``ORCHESTRATOR_VAULT_*`` settings), else the run's shared broker, else
  the ``VaultCredentials`` block ``vault_block``.

Vault logs in as it does for the flows: AppRole with the secret_id from
``ORCHESTRATOR_VAULT_SECRET_ID`` (or the variable the settings' ``secret_id_env``
names), or a token from ``VAULT_TOKEN`` (``token_env``); the token is registered with
the workspace's redactor before it is used and lives in memory only.

The flows read no environment settings (``CloudSources(cloud_block, vault_block)``):
blocks and Vault only. The CLI reads them (:meth:`CloudSources.from_environment`).
Prefect and the blocks are imported only when a part comes from a block, so ``orchestrator
sync`` configured entirely by the environment starts without Prefect (about 3 s less).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass

from orchestrator.cloud_settings import CloudEndpoint, CloudSettings, load_cloud_settings
from orchestrator.credentials import CredentialBroker, open_broker
from orchestrator.exceptions import InvalidInputError
from orchestrator.runs_api import RunsApiClient
from orchestrator.sync import SyncSummary, sync_pending, sync_run
from orchestrator.vault_settings import VaultSettings, load_vault_settings
from orchestrator.workspace import Workspace
from schemas import SyncRecord


@dataclass(frozen=True)
class CloudSources:
    """Where the Runs API endpoint and its token come from (see the module's table).

    Attributes:
        cloud_block: Name of the ``CodexCloudEndpoint`` block.
        vault_block: Name of the ``VaultCredentials`` block.
        settings: ``ORCHESTRATOR_CLOUD_*``; None: not read (the flows).
        vault: ``ORCHESTRATOR_VAULT_*``; None: not set, or not read.
    """

    cloud_block: str
    vault_block: str
    settings: CloudSettings | None = None
    vault: VaultSettings | None = None

    @classmethod
    def from_environment(cls, *, cloud_block: str, vault_block: str) -> CloudSources:
        """The environment's settings first, then these blocks.

        Raises:
            InvalidInputError: an ``ORCHESTRATOR_CLOUD_*`` or ``ORCHESTRATOR_VAULT_*``
                variable is invalid, or only one of URL and WORKSPACE is set.
        """
        return cls(
            cloud_block=cloud_block,
            vault_block=vault_block,
            settings=load_cloud_settings(complete=False),
            vault=load_vault_settings(),
        )

    @property
    def token_given(self) -> bool:
        """Whether the token is given explicitly (``ORCHESTRATOR_CLOUD_TOKEN``)."""
        return self.settings is not None and self.settings.token is not None


@asynccontextmanager
async def open_runs_api(
    workspace: Workspace, env: str, sources: CloudSources
) -> AsyncIterator[RunsApiClient]:
    """A Runs API client with ``env``'s token, closed (its broker too, if its own) at exit.

    Raises:
        InvalidInputError: a block is missing (the message says what else configures it).
        CredentialError: Vault failed, or ``env``'s secret has no such token key.
    """
    endpoint = await _endpoint(sources)
    async with AsyncExitStack() as stack:
        token = await _token(stack, workspace, env, endpoint, sources)
        yield stack.enter_context(
            endpoint.client(token, audit=workspace.audit, redactor=workspace.redactor)
        )


async def mirror(workspace: Workspace, run: str, sources: CloudSources) -> SyncRecord:
    """Mirror one finished run (``<run id>`` or ``<task>/<run>``) with its env's token.

    Raises:
        RunNotFoundError: no such run; InvalidInputError, CredentialError: as
            :func:`open_runs_api`.
    """
    ref = workspace.store.find(run)
    env = workspace.store.read(ref.task_id, ref.run_id).env
    async with open_runs_api(workspace, env, sources) as client:
        # Blocking HTTP with backoff sleeps: keep it off the event loop.
        return await asyncio.to_thread(sync_run, workspace, client, ref.task_id, ref.run_id)


async def mirror_backlog(
    workspace: Workspace, sources: CloudSources, *, env: str | None = None
) -> SyncSummary:
    """Retry every pending or failed sync, and send every finished run never sent.

    Args:
        workspace: Where the runs are.
        sources: Where the endpoint and the token come from.
        env: Only runs of this environment, with its token. None: with a token given
            explicitly, every run; else the runs of the workspace's environment
            (``ORCHESTRATOR_ENV``), since a Vault login reads one environment's token.

    Raises:
        InvalidInputError, CredentialError: as :func:`open_runs_api`.
    """
    if env is None and not sources.token_given:
        env = workspace.settings.env
    async with open_runs_api(workspace, env or workspace.settings.env, sources) as client:
        return await asyncio.to_thread(sync_pending, workspace, client, env=env)


async def _endpoint(sources: CloudSources) -> CloudEndpoint:
    endpoint = sources.settings.endpoint() if sources.settings is not None else None
    if endpoint is not None:
        return endpoint
    from blocks import CodexCloudEndpoint

    from ._runtime import load_block

    hint = "or set ORCHESTRATOR_CLOUD_URL and ORCHESTRATOR_CLOUD_WORKSPACE"
    with _hinted(hint if sources.settings is not None else None):
        block = await load_block(CodexCloudEndpoint, sources.cloud_block)
    return block.get_endpoint()


async def _token(
    stack: AsyncExitStack,
    workspace: Workspace,
    env: str,
    endpoint: CloudEndpoint,
    sources: CloudSources,
) -> str:
    if sources.settings is not None and sources.settings.token is not None:
        return sources.settings.token.get_secret_value()
    return (await _broker(stack, workspace, env, sources)).get(endpoint.token_key)


async def _broker(
    stack: AsyncExitStack, workspace: Workspace, env: str, sources: CloudSources
) -> CredentialBroker:
    """``env``'s credential broker: from the Vault settings, or the flows' (the block's)."""
    if sources.vault is not None:
        broker = await asyncio.to_thread(
            open_broker, sources.vault, env, redactor=workspace.redactor
        )
        return stack.enter_context(broker)
    from ._runtime import run_broker

    hint = "or set ORCHESTRATOR_VAULT_ADDRESS, or ORCHESTRATOR_CLOUD_TOKEN"
    with _hinted(hint if sources.settings is not None else None):
        return await stack.enter_async_context(run_broker(sources.vault_block, env, workspace))


@contextmanager
def _hinted(hint: str | None) -> Iterator[None]:
    """Adds ``hint`` to a missing block's error (the CLI's, where the environment counts)."""
    try:
        yield
    except InvalidInputError as exc:
        if hint is None:
            raise
        raise InvalidInputError(f"{exc}; {hint}") from None
