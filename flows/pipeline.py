"""The manager flow: one run of a task through plan, build, test and review.

It opens (or resumes) the run, checks credentials before any agent call, runs each
phase as a subflow, asks the approval gates, and finishes: final status, the
``orchestrator.run.completed`` event, the mirror to the Runs API, and a summary
artifact. Re-running it with the same ``run_id`` resumes: every step the manifest
records as done (with intact artifacts) is skipped.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect import flow
from prefect.client.schemas.objects import State
from prefect.client.utilities import get_or_create_client
from prefect.runtime import flow_run as prefect_flow_run
from prefect.states import Cancelled

from agents.steps import result_worktree
from blocks import CodexCloudEndpoint, CodexServerSettings, VaultCredentials
from orchestrator.approvals import (
    budget_markdown,
    handover_markdown,
    plan_markdown,
    spec_markdown,
    stopped_at_gate,
)
from orchestrator.credentials import OPENAI_API_KEY
from orchestrator.deterministic import lint_failures
from orchestrator.exceptions import (
    BudgetStoppedError,
    InvalidInputError,
    LibraryError,
    OrchestratorError,
    RunFailedError,
)
from orchestrator.library import Library
from orchestrator.library_drafts import propose
from orchestrator.lifecycle import (
    RunHandle,
    check_run_id,
    fail_run,
    finish_run,
    resume_run,
    start_run,
)
from orchestrator.retention import Action, collect_run
from orchestrator.run_checks import code_without_spec, over_budget, specs_before_plan
from orchestrator.taskspec import load_task_spec
from orchestrator.workspace import Workspace
from schemas import (
    Decision,
    DeploymentRef,
    DraftOrigin,
    Gate,
    GateMode,
    Plan,
    RunManifest,
    RunStatus,
    TestReport,
    Verdict,
)

from ._artifacts import publish_summary, publish_usage
from ._deployment import current_deployment
from ._runtime import (
    DEFAULT_BLOCK,
    codex_config,
    current_flow_run_id,
    open_workspace,
    prefetch_blocks,
    quiet_subflow,
    run_broker,
    run_logger,
    run_sessions,
    shared_run_resources,
)
from .approvals import close_stale_flow_runs
from .build import build_flow
from .cloud_sync import emit_run_completed, mirror_run
from .gates import approval_gate
from .plan import plan_flow
from .review import review_flow
from .test import test_flow


def _initial_run_name() -> str:
    """The name until the run id is known; then the flow run is renamed ``<task>/<run>``."""
    parameters = prefect_flow_run.parameters
    if parameters.get("run_id"):
        return f"resume {parameters['run_id']}"
    return f"start {Path(parameters.get('task_file') or 'task').stem}"


@flow(name="pipeline", flow_run_name=_initial_run_name)
async def pipeline(
    task_file: str = "",
    env: str = "dev",
    run_id: str = "",
    repo: str = "",
    codex_block: str = DEFAULT_BLOCK,
    vault_block: str = DEFAULT_BLOCK,
    cloud_block: str = DEFAULT_BLOCK,
) -> dict[str, Any] | State[Any]:
    """Run a coding task through plan, build, test and review; or resume a run.

    Returns the run's summary; a run stopped at a gate ends its flow run ``Cancelled``,
    named ``Rejected`` (or ``Expired`` when nobody decided in time: the run's status is
    then ``expired``), with the reason as the message and the summary as its data, so no
    stopped run looks like a success.

    Args:
        task_file: Path of the task spec (YAML or JSON) for a new run.
        env: Environment: selects the Vault secret and the approval policy.
        run_id: Resume this run (the task file is then taken from its manifest).
        repo: Target repository path instead of the one the task names.
        codex_block: Name of the Codex server settings block.
        vault_block: Name of the Vault credentials block.
        cloud_block: Name of the Codex Cloud endpoint block; empty to skip the mirror.
    """
    workspace = open_workspace()
    handle, resumed = _open_run(
        workspace,
        task_file=task_file,
        env=env,
        run_id=run_id,
        repo=repo,
        deployment=await current_deployment(),
    )
    await _name_flow_run(handle, resumed=resumed)
    blocks = {"codex_block": codex_block, "vault_block": vault_block}
    async with shared_run_resources():
        await prefetch_blocks(
            (CodexServerSettings, codex_block),
            (VaultCredentials, vault_block),
            *([(CodexCloudEndpoint, cloud_block)] if cloud_block else []),
        )
        try:
            if not handle.read().status.finished:
                await _drive(handle, blocks)
        finally:  # a run that ended by an exception gets its event and mirror too
            manifest = handle.read()
            if manifest.status.finished:
                await _finish(handle, manifest, cloud_block=cloud_block, vault_block=vault_block)
    if manifest.status is RunStatus.FAILED:
        raise RunFailedError(
            f"run {handle.label} failed: {manifest.status_reason}",
            run_id=handle.run_id,
            reason=manifest.status_reason or "unknown",
        )
    summary = run_summary(handle, handle.read())
    if manifest.status.stopped:
        return Cancelled(
            name=stopped_state_name(manifest), message=manifest.status_reason, data=summary
        )
    return summary


def stopped_state_name(manifest: RunManifest) -> str:
    """``Expired`` when the run stopped at a gate nobody decided in time, else ``Rejected``."""
    return "Expired" if manifest.status is RunStatus.EXPIRED else "Rejected"


def run_summary(handle: RunHandle, manifest: RunManifest) -> dict[str, Any]:
    result = manifest.result
    return {
        "task_id": handle.task_id,
        "run_id": handle.run_id,
        "status": manifest.status.value,
        "reason": manifest.status_reason,
        "manifest": str(handle.manifest_path),
        "result_branch": result.branch if result else None,
        "sync": manifest.sync.state.value if manifest.sync else None,
        "tokens": manifest.usage.tokens.total_tokens,
        "cost_usd": manifest.usage.cost_usd,
    }


def _open_run(
    workspace: Workspace,
    *,
    task_file: str,
    env: str,
    run_id: str,
    repo: str,
    deployment: DeploymentRef | None,
) -> tuple[RunHandle, bool]:
    """The run this flow run drives, and whether it continues one (True) or is new."""
    flow_run_id = current_flow_run_id()
    if run_id and not task_file:
        return resume_run(workspace, run_id, flow_run_id=flow_run_id), True
    if not task_file:
        raise InvalidInputError("give a task file to start a run, or the run id to resume")
    if run_id and check_run_id(workspace, load_task_spec(Path(task_file)).id, run_id):
        return resume_run(workspace, run_id, flow_run_id=flow_run_id), True
    handle = start_run(
        workspace,
        task_file=Path(task_file),
        env=env,
        repo=Path(repo) if repo else None,
        run_id=run_id or None,
        flow_run_id=flow_run_id,
        deployment=deployment,
    )
    return handle, False


async def _name_flow_run(handle: RunHandle, *, resumed: bool) -> None:
    """Name the flow run ``<task>/<run>``; when it continues a run, close what the dead
    process left open (its flow runs, its pauses) and say so in its tags.

    A new run has no older flow runs to look for. The flow run's own client is used:
    a client of its own would cost a TLS context (~27 ms of CPU) and a connection.
    """
    flow_run_id = current_flow_run_id()
    if flow_run_id is None:
        return
    client, inferred = get_or_create_client()
    async with AsyncExitStack() as stack:
        if not inferred:  # no flow run client on this loop: a client of its own
            await stack.enter_async_context(client)
        await client.update_flow_run(UUID(flow_run_id), name=handle.label)
        if not resumed:
            return
        closed = await close_stale_flow_runs(client, handle.label, UUID(flow_run_id))
    if closed:
        names = ", ".join(f"{f.name} ({f.id}, was {f.state_name})" for f in closed)
        run_logger().info(
            "resuming %s: set Crashed what its dead process left: %s", handle.label, names
        )


async def _drive(handle: RunHandle, blocks: dict[str, str]) -> None:
    """Run the phases; any error marks the run failed with its reason (and is raised)."""
    try:
        await _check_credentials(handle, blocks)
        with quiet_subflow():
            await _run_phases(handle, blocks)
    except BudgetStoppedError:
        return  # stopped at its budget gate: recorded rejected, ends like a rejection
    except Exception as exc:
        if not handle.read().status.finished:
            fail_run(handle, str(exc) or type(exc).__name__, error_type=type(exc).__name__)
        raise


async def _check_credentials(handle: RunHandle, blocks: dict[str, str]) -> None:
    """Before any agent call: log in, read the env's secrets, and check the model key.

    Fails when Vault is down, sealed or forbidden, or when the model's key is missing.
    The broker stays open for the phases (a Runs API token is checked only by the
    mirror, so a sync problem never fails the run).
    """
    async with run_broker(blocks["vault_block"], handle.read().env, handle.workspace) as broker:
        codex = await codex_config(blocks["codex_block"])
        if codex.provider.env_key:
            broker.get(OPENAI_API_KEY)


async def _run_phases(handle: RunHandle, blocks: dict[str, str]) -> None:
    ids = {"task_id": handle.task_id, "run_id": handle.run_id, **blocks}
    if not await _spec_gate(handle):
        return
    sessions = await run_sessions(handle, **blocks)

    def calls_next(count: int) -> None:
        """The next ``count`` agent calls: each one's codex server is started while the
        call before it runs (and the first one's now)."""
        if sessions is not None:
            sessions.prepare(count)

    policy = handle.read().approval_policy
    plan_gate_waits = policy is None or policy.plan is not GateMode.AUTO
    calls_next(1 if plan_gate_waits else 2)  # no server idles while a person decides
    plan = await plan_flow(**ids)
    if not await _gate(handle, Gate.PLAN, _plan_shown(handle, plan)):
        return
    calls_next(len(plan.subtasks) + 1)  # the builders, then the tester
    await build_flow(**ids)
    calls_next(2)  # the tester, then the reviewer
    report = await test_flow(**ids)
    if not report.all_passed:
        fail_run(handle, _test_failure(report))
        return
    calls_next(1)
    verdict = await review_flow(**ids)
    if verdict.verdict is Verdict.REQUEST_CHANGES:
        reason = "reviewer requested changes: " + "; ".join(verdict.reasons)
        _propose_to_library(handle, DraftOrigin.CHANGES_REQUESTED, reason)
        fail_run(handle, reason)
        return
    if not await _budget_gate(handle):
        return
    shown = handover_markdown(handle.read(), spec_problems=_code_without_spec(handle))
    if await _gate(handle, Gate.HANDOVER, shown):
        finish_run(handle, RunStatus.SUCCEEDED)


async def _spec_gate(handle: RunHandle) -> bool:
    """Before any agent call: a person decides on stale or broken specs of the target."""
    manifest = handle.read()
    check = specs_before_plan(Path(manifest.task.repo_path), manifest.task.spec)
    if not check.problems:
        return True
    return await _gate(handle, Gate.SPEC, spec_markdown(handle, check.problems))


async def _budget_gate(handle: RunHandle) -> bool:
    """After the review: a person decides on a change over the task's diff budget."""
    manifest = handle.read()
    result = manifest.result
    if result is None or result.commit is None:
        return True
    repo, base = Path(manifest.task.repo_path), manifest.task.base_commit
    problems = over_budget(repo, base, result.commit, manifest.task.spec.diff_budget)
    if not problems:
        return True
    return await _gate(handle, Gate.DIFF_BUDGET, budget_markdown(handle, problems))


def _code_without_spec(handle: RunHandle) -> list[str]:
    manifest = handle.read()
    worktree = result_worktree(handle)
    return code_without_spec(worktree.path, manifest.task.spec, manifest.task.base_commit)


REJECTIONS_TO_LEARN_FROM = {
    Gate.PLAN: DraftOrigin.PLAN_REJECTED,
    Gate.HANDOVER: DraftOrigin.HANDOVER_REJECTED,
}


def _propose_to_library(handle: RunHandle, origin: DraftOrigin, reason: str) -> None:
    """Leave a library draft for a person; a library that cannot take one never stops
    the run from ending as it should."""
    try:
        library = Library.of(handle.workspace.settings)
        draft = propose(
            library, origin=origin, task_id=handle.task_id, run_id=handle.run_id, reason=reason
        )
    except (LibraryError, OSError) as exc:
        run_logger().warning("no library draft left for %s: %s", handle.label, exc)
        return
    run_logger().info("library draft %s left for a person (orchestrator library drafts)", draft.id)


def _test_failure(report: TestReport) -> str:
    if not report.passed:
        return (
            f"tests failed: {report.command} exited {report.exit_code} "
            f"({report.tests_failed} failed, {report.tests_passed} passed)"
        )
    return f"linters failed: {lint_failures(report.lint)}"


def _plan_shown(handle: RunHandle, plan: Plan) -> str:
    rows = [(s.id, s.title, "; ".join(s.acceptance), ", ".join(s.files)) for s in plan.subtasks]
    return plan_markdown(handle, plan.summary, rows)


async def _gate(handle: RunHandle, gate: Gate, shown: str) -> bool:
    """True when approved; a rejection ends the run ``rejected``, an expiry ``expired``.

    The plan and hand-over gates follow the run's policy; a check's gate (``spec``,
    ``diff-budget``) always waits for a person, for as long as the plan gate would.
    """
    policy = handle.read().approval_policy
    assert policy is not None
    mode, timeout = {
        Gate.PLAN: (policy.plan, policy.plan_timeout_seconds),
        Gate.HANDOVER: (policy.handover, policy.handover_timeout_seconds),
    }.get(gate, (GateMode.REQUIRED, policy.plan_timeout_seconds))
    approval = await approval_gate(
        handle,
        gate.value,
        gate,
        shown=shown,
        mode=mode,
        timeout_seconds=timeout,
        policy_source=policy.source,
    )
    if approval.decision is Decision.APPROVE:
        return True
    if gate in REJECTIONS_TO_LEARN_FROM and approval.decision is Decision.REJECT:
        _propose_to_library(handle, REJECTIONS_TO_LEARN_FROM[gate], approval.reason or "")
    status, reason = stopped_at_gate(gate, approval)
    finish_run(handle, status, reason=reason)
    return False


async def _finish(
    handle: RunHandle, manifest: RunManifest, *, cloud_block: str, vault_block: str
) -> None:
    """The finished run's event, its mirror to the Runs API (once), and its summary.

    The run's status stands whatever the mirror does: a sync that fails, or cannot
    start (no endpoint block, Vault down, no token), is recorded by ``mirror_run`` as
    ``sync: failed`` with the reason, for the backlog to retry. An empty
    ``cloud_block`` skips the mirror on purpose (``sync`` stays unset).
    """
    logger = run_logger()
    emit_run_completed(handle, manifest)
    if not cloud_block:
        logger.info("cloud sync skipped: no cloud block given")
    else:
        try:
            await mirror_run(handle.task_id, handle.run_id, cloud_block, vault_block)
        except OrchestratorError as exc:  # the ledger or manifest could not be written
            logger.warning("cloud sync not recorded: %s", exc)
    finished = handle.read()
    await publish_usage(handle, finished)
    await publish_summary(handle, finished)
    logger.info("run %s %s; manifest %s", handle.label, manifest.status.value, handle.manifest_path)
    if handle.workspace.settings.gc_on_finish:
        _collect_garbage(handle)


def _collect_garbage(handle: RunHandle) -> None:
    """The run's own retention step (ORCHESTRATOR_GC_ON_FINISH); its status stands
    whatever retention does."""
    logger = run_logger()
    ref = handle.workspace.store.ref(handle.task_id, handle.run_id)
    try:
        items = collect_run(handle.workspace, ref)
    except OrchestratorError as exc:
        logger.warning("retention skipped: %s", exc)
        return
    for item in items:
        if item.action is not Action.REMOVED:
            logger.info("retention: %s %s %s: %s", item.action, item.kind, item.name, item.reason)
    removed = sum(i.action is Action.REMOVED for i in items)
    logger.info("retention: %d worktree(s) and branch(es) removed", removed)
