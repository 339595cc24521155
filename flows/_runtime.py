"""Wiring shared by the flows: the workspace, blocks, credentials and the codex session.

Flows get everything through these helpers, read once at the flow's edge: settings
from the environment, configuration from blocks (by name), secrets from Vault into
an in-memory broker. Nothing secret is ever a flow parameter.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import AbstractContextManager, asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import anyio
from prefect import Task, get_run_logger, task
from prefect.blocks.core import Block
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State
from prefect.context import SettingsContext, get_settings_context
from prefect.exceptions import ObjectNotFound
from prefect.logging.loggers import LoggingAdapter
from prefect.runtime import flow_run, task_run

from agents.approvals import Approver, PolicyApprover
from agents.backend import BackendSession
from agents.backend import new_session as new_backend_session
from agents.budget_watch import TurnWatch
from agents.durable import kept_codex_home
from agents.events import CodexEvent, EventCallback, ExecCommandBegin, ExecCommandEnd, PatchApplyEnd
from agents.warm import WarmSessions
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
from orchestrator.turn_budget import call_allowance, pricer, record_interrupted
from orchestrator.workspace import Workspace
from schemas import (
    ApprovalPolicy,
    CodexServerConfig,
    CommandPolicy,
    GateMode,
    PhaseName,
    StepStatus,
)

from ._budget_gate import enforce_budget
from .gates import CommandEscalation

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
P = ParamSpec("P")
R = TypeVar("R")


@dataclass
class RunResources:
    """What one pipeline run loads once and its subflows reuse, in the same process.

    Loading the blocks and logging in to Vault once per run, rather than once per
    phase, keeps per-agent-call overhead low; a phase flow started on its own (a
    deployment run) finds no shared resources and loads its own.
    """

    blocks: dict[tuple[type[Block], str], Block] = field(default_factory=dict)
    codex: dict[str, CodexServerConfig] = field(default_factory=dict)
    brokers: dict[tuple[str, str], CredentialBroker] = field(default_factory=dict)
    sessions: dict[tuple[str, str], WarmSessions] = field(default_factory=dict)


_shared: ContextVar[RunResources | None] = ContextVar("orchestrator_run_resources", default=None)


async def load_block(kind: type[BlockT], name: str) -> BlockT:
    """Load a configuration block (once per run), with an error that says how to create it."""
    resources = _shared.get()
    if resources is not None and (kind, name) in resources.blocks:
        cached = resources.blocks[kind, name]
        assert isinstance(cached, kind)
        return cached
    try:
        block: BlockT = await kind.aload(name)
    except (ValueError, ObjectNotFound):
        slug = kind.get_block_type_slug()
        raise InvalidInputError(
            f"no {kind.__name__} block named {name!r} ({slug}/{name}); create it in the Prefect "
            "UI or with 'orchestrator setup'"
        ) from None
    if resources is not None:
        resources.blocks[kind, name] = block
    return block


async def prefetch_blocks(*wanted: tuple[type[Block], str]) -> None:
    """Load the run's blocks at once, side by side; a missing one fails only where it is
    used (a missing cloud block, say, fails the mirror, not the run)."""
    await asyncio.gather(*(load_block(kind, name) for kind, name in wanted), return_exceptions=True)


@asynccontextmanager
async def shared_run_resources() -> AsyncIterator[RunResources]:
    """Share blocks and credentials with every subflow of this run; revoked at exit."""
    resources = RunResources()
    token = _shared.set(resources)
    try:
        yield resources
    finally:
        _shared.reset(token)
        for sessions in resources.sessions.values():
            await sessions.aclose()  # before the credentials they were started with go
        for broker in resources.brokers.values():
            broker.close()


async def codex_config(block_name: str) -> CodexServerConfig:
    """The codex server settings of block ``block_name`` (loaded once per run)."""
    resources = _shared.get()
    if resources is not None and block_name in resources.codex:
        return resources.codex[block_name]
    config = (await load_block(CodexServerSettings, block_name)).get_config()
    if resources is not None:
        resources.codex[block_name] = config
    return config


@asynccontextmanager
async def run_broker(
    vault_block: str, env: str, workspace: Workspace
) -> AsyncIterator[CredentialBroker]:
    """The env's credentials: the run's shared broker, or one of its own closed at exit."""
    resources = _shared.get()
    key = (vault_block, env)
    if resources is not None and key in resources.brokers:
        yield resources.brokers[key]
        return
    vault = await load_block(VaultCredentials, vault_block)
    broker = vault.open_broker(env, redactor=workspace.redactor)
    if resources is not None:
        resources.brokers[key] = broker  # closed with the shared resources
        yield broker
        return
    with broker:
        yield broker


def new_session(
    codex: CodexServerConfig,
    broker: CredentialBroker,
    approver: Approver,
    *,
    codex_home: Path | None = None,
) -> BackendSession:
    """An unopened session of the configured backend, with credentials from the broker only."""
    provider = codex.provider
    mapping = {provider.env_key: OPENAI_API_KEY} if provider.env_key else {}
    # Only the credentials: the session builds the rest of codex's environment itself.
    env = broker.subprocess_env(mapping)
    return new_backend_session(codex, env=env, approver=approver, codex_home=codex_home)


async def run_sessions(
    handle: RunHandle, *, codex_block: str, vault_block: str
) -> WarmSessions | None:
    """The run's codex sessions, started ahead of the calls (None outside a pipeline run,
    and on ``app-server``, whose steps each run on a CODEX_HOME of their own)."""
    resources = _shared.get()
    if resources is None:
        return None
    key = (codex_block, vault_block)
    if key not in resources.sessions:
        manifest = handle.read()
        codex = (await codex_config(codex_block)).for_env(manifest.env)
        if codex.backend == "app-server":
            return None
        async with run_broker(vault_block, manifest.env, handle.workspace) as broker:
            approver = command_approver(handle, manifest.approval_policy, codex)
            resources.sessions[key] = WarmSessions(partial(new_session, codex, broker, approver))
    return resources.sessions[key]


@dataclass(frozen=True)
class PhaseRuntime:
    """What a phase flow needs to make agent calls for one run."""

    handle: RunHandle
    codex: CodexServerConfig
    broker: CredentialBroker
    approver: Approver
    sessions: WarmSessions | None = None
    budget_lock: anyio.Lock = field(default_factory=anyio.Lock)
    """One budget gate at a time in this phase flow run (see ``enforce_budget``)."""

    @asynccontextmanager
    async def session(self, step_id: str) -> AsyncIterator[BackendSession]:
        """A codex server for one call of step ``step_id``: on ``app-server`` one on the
        step's kept CODEX_HOME (its thread can be resumed after a crash, see
        ``agents.durable``); else the run's next warm one, or one of its own."""
        if self.codex.backend == "app-server":
            with kept_codex_home(self.handle, step_id) as home:
                make = new_session(self.codex, self.broker, self.approver, codex_home=home)
                async with make as session:
                    yield session
            return
        if self.sessions is not None:
            async with self.sessions.session() as session:
                yield session
            return
        async with new_session(self.codex, self.broker, self.approver) as session:
            yield session


@asynccontextmanager
async def phase_runtime(
    task_id: str, run_id: str, *, codex_block: str, vault_block: str, approver: Approver | None
) -> AsyncIterator[PhaseRuntime]:
    workspace = open_workspace()
    handle = RunHandle(workspace, task_id, run_id)
    manifest = handle.read()
    codex = (await codex_config(codex_block)).for_env(manifest.env)
    async with run_broker(vault_block, manifest.env, workspace) as broker:
        yield PhaseRuntime(
            handle=handle,
            codex=codex,
            broker=broker,
            approver=approver or command_approver(handle, manifest.approval_policy, codex),
            # A given approver is the caller's own: sessions made with it, not the run's.
            sessions=None
            if approver
            else await run_sessions(handle, codex_block=codex_block, vault_block=vault_block),
        )


def quiet_subflow() -> AbstractContextManager[object]:
    """Settings for a subflow call: no heartbeat thread of its own.

    A subflow runs in its parent's process, whose heartbeat already covers a crash;
    a heartbeat thread per subflow only adds events and work. The settings are copied
    rather than rebuilt (``temporary_settings`` re-reads the environment, ~25 ms).
    """
    context = get_settings_context()
    flows = context.settings.flows.model_copy(update={"heartbeat_frequency": None})
    settings = context.settings.model_copy(update={"flows": flows})
    return SettingsContext(profile=context.profile, settings=settings)


def event_logger(logger: RunLogger, step_id: str) -> EventCallback:
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


RunLogger = logging.Logger | LoggingAdapter


def run_logger() -> RunLogger:
    """The current flow or task run's logger (its records reach the Prefect UI)."""
    return get_run_logger()


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
    """Prefect retry condition: retry transient agent failures, never anything else.

    Prefect hands the condition ``Failed(data=<the exception>)`` for an exception the
    task raised.
    """
    error = state.data
    return isinstance(error, BaseException) and is_transient(error)


async def call_agent(
    runtime: PhaseRuntime, step_id: str, step: Callable[..., Awaitable[R]], *args: Any
) -> R:
    """Run one agent step (``agents.steps``) on a codex session of its own.

    The agent's progress (commands, exit codes, patches) goes to the task run's log. The
    run's budget is checked before the call and again after it, with its usage recorded:
    a limit reached pauses at a budget gate (:func:`flows._budget_gate.enforce_budget`).
    During the call its token events are checked against what is left
    (:class:`TurnWatch`): a call that reaches it is interrupted and recorded so, the gate
    opens, and once a person raised the budget the step is done again.
    """
    logger = run_logger()
    while True:
        await enforce_budget(runtime.handle, runtime.budget_lock)
        attempts = _attempts(runtime.handle, step_id)
        try:
            async with runtime.session(step_id) as session:
                price = pricer(runtime.handle, session.config.model)
                watch = TurnWatch(call_allowance(runtime.handle), price=price)
                with watch.scope:
                    return_value = await step(
                        runtime.handle,
                        session,
                        *args,
                        on_event=watch.watching(event_logger(logger, step_id)),
                        task_run_id=current_task_run_id(),
                    )
        finally:
            _log_restart(logger, runtime.handle, step_id, attempts)
        if not watch.interrupted:
            break
        assert watch.reason is not None
        record_interrupted(
            runtime.handle,
            step_id,
            tokens=watch.used,
            model=session.config.model,
            reason=watch.reason,
        )
        logger.warning("%s: interrupted by the budget: %s", step_id, watch.reason)
    await enforce_budget(runtime.handle, runtime.budget_lock)
    return return_value


def _attempts(handle: RunHandle, step_id: str) -> int:
    step = handle.read().step(step_id)
    return step.attempt if step is not None else 0


def _log_restart(logger: RunLogger, handle: RunHandle, step_id: str, attempts: int) -> None:
    """Say how an attempt this call made after an interrupted one began (continued or redone)."""
    step = handle.read().step(step_id)
    if step is not None and step.attempt > attempts and step.restart is not None:
        logger.info("%s: attempt %d %s", step_id, step.attempt, step.restart.reason)


def agent_task(
    name: str, *, run_name: str
) -> Callable[[Callable[P, Coroutine[Any, Any, R]]], Task[P, Coroutine[Any, Any, R]]]:
    """The decorator of every agent call: a task retried on transient failures only.

    No caching: the manifest is the cache (a step recorded done is skipped).
    """
    return task(
        name=name,
        task_run_name=run_name,
        retries=2,
        retry_delay_seconds=1,
        retry_condition_fn=retry_transient_only,
        cache_policy=NO_CACHE,
    )


ESCALATION_GRACE_SECONDS = 30
"""The policy approver's own deadline exceeds the pause's, so the pause's timeout decides."""


def command_approver(
    handle: RunHandle, policy: ApprovalPolicy | None, codex: CodexServerConfig
) -> PolicyApprover:
    """The approver of codex's exec/patch requests: the run's command policy, a person next.

    What the policy does not decide itself (every exec request: each is a request to run
    outside the sandbox) pauses the flow run for a person
    (:class:`flows.gates.CommandEscalation`), for at most the policy's command timeout and
    never longer than one codex call may take; expiry denies with reason timeout.

    An unattended run (every gate ``auto``, as in dev) never waits for a person: under
    ``patches_in_workspace`` a command, or a patch outside the workspace, is denied at
    once, and the denial's reason says so.
    """
    if policy is None:
        return PolicyApprover(CommandPolicy.DENY, workspace=handle.work_dir)
    unattended = policy.plan is GateMode.AUTO and policy.handover is GateMode.AUTO
    if unattended and policy.commands is CommandPolicy.PATCHES_IN_WORKSPACE:
        return PolicyApprover(
            policy.commands,
            workspace=handle.work_dir,
            no_person=f"no person is asked in an unattended run ({policy.source})",
        )
    timeout = max(1, min(policy.command_timeout_seconds, int(codex.call_timeout_seconds)))
    escalation = CommandEscalation(handle, timeout_seconds=timeout, policy_source=policy.source)
    return PolicyApprover(
        policy.commands,
        workspace=handle.work_dir,
        escalate=escalation,
        timeout=timeout + ESCALATION_GRACE_SECONDS,
    )
