"""Wiring shared by the flows: the workspace, blocks, credentials and the codex session.

Flows get everything through these helpers, read once at the flow's edge: settings
from the environment, configuration from blocks (by name), secrets from Vault into
an in-memory broker. Nothing secret is ever a flow parameter.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import TypeVar

from prefect import get_run_logger
from prefect.blocks.core import Block
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State
from prefect.exceptions import ObjectNotFound
from prefect.logging.loggers import LoggingAdapter
from prefect.runtime import flow_run, task_run
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

from agents.approvals import Approver, PolicyApprover
from agents.events import CodexEvent, EventCallback, ExecCommandBegin, ExecCommandEnd, PatchApplyEnd
from agents.session import CodexSession
from blocks import CodexServerSettings, VaultCredentials
from orchestrator.credentials import OPENAI_API_KEY, CredentialBroker
from orchestrator.exceptions import (
    AgentOutputError,
    AgentServerError,
    AgentTimeoutError,
    InvalidInputError,
)
from orchestrator.lifecycle import RunHandle, begin_phase, end_phase
from orchestrator.redaction import install_log_redaction
from orchestrator.settings import Settings
from orchestrator.workspace import Workspace
from schemas import CodexServerConfig, CommandPolicy, PhaseName, StepStatus

DEFAULT_BLOCK = "default"


def open_workspace() -> Workspace:
    """The workspace named by the environment; log redaction installed first."""
    install_log_redaction()
    return Workspace.open(Settings())


def current_flow_run_id() -> str | None:
    run_id = flow_run.get_id()
    return str(run_id) if run_id else None


def current_task_run_id() -> str | None:
    run_id = task_run.get_id()
    return str(run_id) if run_id else None


BlockT = TypeVar("BlockT", bound=Block)


async def load_block(kind: type[BlockT], name: str) -> BlockT:
    """Load a configuration block, with an error that says how to create it."""
    try:
        block: BlockT = await kind.aload(name)
    except (ValueError, ObjectNotFound):
        slug = kind.get_block_type_slug()
        raise InvalidInputError(
            f"no {kind.__name__} block named {name!r} ({slug}/{name}); create it in the Prefect "
            "UI or with 'orchestrator setup'"
        ) from None
    return block


@contextmanager
def open_credentials(
    vault: VaultCredentials, env: str, workspace: Workspace
) -> Iterator[CredentialBroker]:
    """The env's secrets in memory for the length of the block; revoked at exit."""
    with vault.open_broker(env, redactor=workspace.redactor) as broker:
        yield broker


@dataclass(frozen=True)
class PhaseRuntime:
    """What a phase flow needs to make agent calls for one run."""

    handle: RunHandle
    codex: CodexServerConfig
    broker: CredentialBroker
    approver: Approver

    @asynccontextmanager
    async def session(self) -> AsyncIterator[CodexSession]:
        """A codex MCP server for this phase, with credentials from the broker only."""
        provider = self.codex.provider
        mapping = {provider.env_key: OPENAI_API_KEY} if provider.env_key else {}
        env = self.broker.subprocess_env(mapping, base=os.environ)
        async with CodexSession(self.codex, env=env, approver=self.approver) as session:
            yield session


@asynccontextmanager
async def phase_runtime(
    task_id: str, run_id: str, *, codex_block: str, vault_block: str, approver: Approver | None
) -> AsyncIterator[PhaseRuntime]:
    workspace = open_workspace()
    handle = RunHandle(workspace, task_id, run_id)
    manifest = handle.read()
    codex = (await load_block(CodexServerSettings, codex_block)).get_config()
    vault = await load_block(VaultCredentials, vault_block)
    policy = manifest.approval_policy
    with open_credentials(vault, manifest.env, workspace) as broker:
        yield PhaseRuntime(
            handle=handle,
            codex=codex,
            broker=broker,
            approver=approver
            or PolicyApprover(
                policy.commands if policy else CommandPolicy.DENY, workspace=handle.work_dir
            ),
        )


def quiet_subflow() -> AbstractContextManager[object]:
    """Settings for a subflow call: no heartbeat thread of its own.

    A subflow runs in its parent's process, whose heartbeat already covers a crash;
    the subflow's own heartbeat thread would cost about 1 s when it is joined.
    """
    return temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None})


def event_logger(logger: LoggingAdapter, step_id: str) -> EventCallback:
    """An event callback that logs an agent's progress (commands, exit codes, patches)."""

    async def log_event(event: CodexEvent) -> None:
        if isinstance(event, ExecCommandBegin):
            logger.info("%s: $ %s", step_id, event.text)
        elif isinstance(event, ExecCommandEnd):
            logger.info(
                "%s: exit %s after %s ms: %s",
                step_id,
                event.exit_code,
                event.duration_ms,
                event.text,
            )
        elif isinstance(event, PatchApplyEnd):
            logger.info(
                "%s: patch %s: %s",
                step_id,
                "applied" if event.success else "failed",
                ", ".join(event.files),
            )

    return log_event


def run_logger() -> LoggingAdapter:
    logger = get_run_logger()
    assert isinstance(logger, LoggingAdapter)
    return logger


@asynccontextmanager
async def running_phase(
    phase: PhaseName,
    task_id: str,
    run_id: str,
    *,
    codex_block: str,
    vault_block: str,
    approver: Approver | None = None,
) -> AsyncIterator[PhaseRuntime]:
    """A phase flow's body: recorded running, then succeeded or failed in the manifest."""
    async with phase_runtime(
        task_id, run_id, codex_block=codex_block, vault_block=vault_block, approver=approver
    ) as runtime:
        begin_phase(runtime.handle, phase, flow_run_id=current_flow_run_id())
        try:
            yield runtime
        except BaseException:
            end_phase(runtime.handle, phase, StepStatus.FAILED)
            raise
        end_phase(runtime.handle, phase, StepStatus.SUCCEEDED)


def is_transient(error: BaseException) -> bool:
    """Worth retrying: the server died, the model failed for a while, or a call timed out."""
    if isinstance(error, AgentOutputError):
        return False
    return isinstance(error, AgentServerError | AgentTimeoutError)


def retry_transient_only(task: object, task_run: object, state: State) -> bool:
    """Prefect retry condition: retry transient agent failures, never anything else."""
    try:
        state.result(raise_on_failure=True)
    except BaseException as error:
        return is_transient(error)
    return False


AGENT_TASK_OPTIONS: dict[str, object] = {
    "retries": 2,
    "retry_delay_seconds": 1,
    "retry_condition_fn": retry_transient_only,
    "cache_policy": NO_CACHE,
}
"""Every agent call is a task with these options (no caching: the manifest is the cache)."""
