"""A run's life as manifest changes: start, resume, mode, policy, finish.

Plain functions over the run store, so the flows stay thin and all of this is
testable without Prefect. Its phases and steps (begun, finished, failed; the resume
rule) are :mod:`orchestrator.step_records`, whose names are importable here too.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from schemas import (
    ApprovalPolicy,
    ArtifactRecord,
    CommandPolicy,
    DeploymentRef,
    ErrorRecord,
    ExecutionMode,
    GateMode,
    ModeDecision,
    PhaseName,
    RunManifest,
    RunResult,
    RunStatus,
    TaskSnapshot,
    TaskSpec,
    utc_now,
)

from .budget import resolve_budget
from .exceptions import InvalidInputError
from .gitops import check_target, git_common_dir
from .runstore import new_run_id, safe_id, sha256_file

# A run's phases and steps live in their own module; these names stay importable here.
from .step_records import StepOutcome as StepOutcome
from .step_records import begin_phase as begin_phase
from .step_records import begin_step as begin_step
from .step_records import completed_output as completed_output
from .step_records import end_phase as end_phase
from .step_records import fail_step as fail_step
from .step_records import finish_step as finish_step
from .taskspec import load_task_spec, resolve_repo
from .workspace import Workspace

ACTOR = "orchestrator"

# Gate defaults per environment; a task's own setting wins. Unknown environments
# get the strict default.
# No default approves a command by policy: an exec request is a request to leave the
# sandbox, and dev/test runs (no person asked) deny those.
_STRICT = (GateMode.REQUIRED, GateMode.REQUIRED, CommandPolicy.ASK_PERSON)
ENV_GATE_DEFAULTS: dict[str, tuple[GateMode, GateMode, CommandPolicy]] = {
    "dev": (GateMode.AUTO, GateMode.AUTO, CommandPolicy.PATCHES_IN_WORKSPACE),
    "test": (GateMode.AUTO, GateMode.AUTO, CommandPolicy.PATCHES_IN_WORKSPACE),
}


@dataclass(frozen=True)
class RunHandle:
    """One run in one workspace."""

    workspace: Workspace
    task_id: str
    run_id: str

    @property
    def label(self) -> str:
        return f"{self.task_id}/{self.run_id}"

    @property
    def path(self) -> Path:
        return self.workspace.store.ref(self.task_id, self.run_id).path

    @property
    def manifest_path(self) -> Path:
        return self.workspace.store.ref(self.task_id, self.run_id).manifest_path

    @property
    def work_dir(self) -> Path:
        """Worktrees of this run."""
        return self.workspace.settings.work_dir / self.task_id / self.run_id

    def read(self) -> RunManifest:
        return self.workspace.store.read(self.task_id, self.run_id)

    def update(
        self,
        mutate: Callable[[RunManifest], None],
        *,
        event: str = "manifest.updated",
        **detail: object,
    ) -> RunManifest:
        return self.workspace.store.update(
            self.task_id, self.run_id, mutate, event=event, actor=ACTOR, **detail
        )

    def store_artifact(
        self, name: str, content: str | bytes, *, kind: str, step_id: str | None = None
    ) -> ArtifactRecord:
        """Write the file only; record it with :func:`finish_step`."""
        return self.workspace.store.store_artifact(
            self.task_id, self.run_id, name, content, kind=kind, step_id=step_id
        )

    def read_artifact(self, record: ArtifactRecord) -> str:
        ref = self.workspace.store.ref(self.task_id, self.run_id)
        return self.workspace.store.artifact_path(ref, record.name).read_text(encoding="utf-8")


# -- starting ----------------------------------------------------------------------


def decide_mode(spec: TaskSpec) -> ModeDecision:
    """``mcp`` unless the task asks for parallel execution."""
    if spec.execution.parallel:
        return ModeDecision(
            mode=ExecutionMode.PARALLEL,
            reason=f"execution.parallel is true (at most {spec.execution.max_parallel} builders)",
        )
    return ModeDecision(mode=ExecutionMode.MCP, reason="execution.parallel is false (default)")


def resolve_policy(spec: TaskSpec, env: str) -> ApprovalPolicy:
    """The gate settings in force: the task's own, else the environment's default."""
    plan, handover, commands = ENV_GATE_DEFAULTS.get(env, _STRICT)
    approvals = spec.approvals
    from_task = [
        name for name in ("plan", "handover", "commands") if getattr(approvals, name) is not None
    ]
    source = f"env {env} defaults" + (f"; task sets {', '.join(from_task)}" if from_task else "")
    return ApprovalPolicy(
        plan=approvals.plan or plan,
        handover=approvals.handover or handover,
        commands=approvals.commands or commands,
        plan_timeout_seconds=approvals.timeouts.plan,
        handover_timeout_seconds=approvals.timeouts.handover,
        command_timeout_seconds=approvals.timeouts.command,
        source=source,
    )


def start_run(
    workspace: Workspace,
    *,
    task_file: Path,
    env: str,
    repo: Path | None = None,
    run_id: str | None = None,
    flow_run_id: str | None = None,
    deployment: DeploymentRef | None = None,
) -> RunHandle:
    """Check every input, then create the run's manifest (``deployment``: the Prefect
    deployment that started it, if one did).

    Nothing is written unless every check passes.

    Raises:
        InvalidInputError: a malformed task, a missing or dirty target repository, an
            unknown base branch, a target an agent could write (see
            :func:`check_outside_agent_roots`), or a run id that exists already.
    """
    spec = load_task_spec(task_file)
    repo_path = repo.resolve() if repo else resolve_repo(spec, task_file)
    base_commit = check_target(repo_path, spec.target.base_branch)
    run_id = run_id or new_run_id()
    check_outside_agent_roots(workspace, repo_path, task_id=spec.id, run_id=run_id)
    now = utc_now()
    manifest = RunManifest(
        task_id=spec.id,
        run_id=run_id,
        env=env,
        flow_run_id=flow_run_id,
        deployment=deployment,
        created_at=now,
        updated_at=now,
        task=TaskSnapshot(
            path=str(task_file),
            sha256=sha256_file(task_file),
            spec=spec,
            repo_path=str(repo_path),
            base_commit=base_commit,
        ),
        mode=decide_mode(spec),
        approval_policy=resolve_policy(spec, env),
        budget=resolve_budget(
            spec,
            env,
            workspace.settings.budgets,
            deployment=deployment,
            per_deployment=workspace.settings.deployment_budgets,
        ),
    )
    workspace.store.create(manifest, actor=ACTOR)
    return RunHandle(workspace, manifest.task_id, manifest.run_id)


def agent_writable_roots(workspace: Workspace, task_id: str, run_id: str) -> list[Path]:
    """Folders agents' sandboxes can write: the worktree folder of every run (this new
    one, ``work/<task>/<run>``, included).

    (Each agent's private TMPDIR is a fresh folder inside its own CODEX_HOME; /tmp and
    the inherited TMPDIR are shut, see ``agents._home``.)
    """
    work = workspace.settings.work_dir
    runs = {(ref.task_id, ref.run_id) for ref in workspace.store.list_runs()}
    return [work / task / run for task, run in sorted(runs | {(task_id, run_id)})]


def check_outside_agent_roots(
    workspace: Workspace, repo: Path, *, task_id: str, run_id: str
) -> None:
    """Refuse a target repository, its git folder or ORCHESTRATOR_HOME inside a root an
    agent can write: an agent could plant hooks or config that our own git commands, or
    the next run, would obey, or rewrite the manifests.

    Raises:
        InvalidInputError: one of them lies inside such a root (symlinks resolved).
    """
    watched = {
        "the target repository": repo,
        "its git folder": git_common_dir(repo),
        "ORCHESTRATOR_HOME": workspace.settings.home,
    }
    for root in agent_writable_roots(workspace, task_id, run_id):
        real_root = Path(os.path.realpath(root))
        for what, path in watched.items():
            real = Path(os.path.realpath(path))
            if real == real_root or real_root in real.parents:
                raise InvalidInputError(
                    f"{what} {path} lies inside {root}, the worktrees of run {root.name}, "
                    "which agents' sandboxes can write; use a target repository elsewhere"
                )


def check_run_id(workspace: Workspace, task_id: str, run_id: str) -> bool:
    """Check a run id given to start or resume ``task_id``; True when that run exists.

    Raises:
        UnsafeIdError: the id could escape its folder.
        InvalidInputError: a run with that id belongs to another task.
    """
    safe_id(run_id, what="run id")
    owners = workspace.store.tasks_with_run(run_id)
    if owners and task_id not in owners:
        raise InvalidInputError(
            f"run {run_id} belongs to task {', '.join(owners)}, not to {task_id}; "
            "give another run id, or resume that run with 'orchestrator resume'"
        )
    return bool(owners)


FINAL_STATUSES = frozenset({RunStatus.SUCCEEDED, RunStatus.REJECTED, RunStatus.EXPIRED})
"""A run that ended so is returned by :func:`resume_run` as it is."""

VERDICT_FAILURE = "RunFailed"
"""The error type of a run failed by a verdict (its tests, its reviewer): doing the same
work again gives the same verdict, so such a run stays failed on resume."""


def continues_on_resume(manifest: RunManifest) -> bool:
    """True unless the run succeeded, was rejected, expired, or failed by a verdict.

    A run that failed by an error (a model outage, a timeout, Vault down) is continued:
    its failed step is redone, its done steps skipped.
    """
    if manifest.status in FINAL_STATUSES:
        return False
    if manifest.status is not RunStatus.FAILED:
        return True
    cause = next(
        (e for e in reversed(manifest.errors) if e.message == manifest.status_reason), None
    )
    return cause is None or cause.type != VERDICT_FAILURE


def resume_run(workspace: Workspace, run: str, *, flow_run_id: str | None = None) -> RunHandle:
    """Reopen an existing run to continue it: one that was killed, paused, or failed by an
    error (its failed step is redone, its done steps skipped). A succeeded, rejected or
    expired run, or one its tests or reviewer failed, is returned as it is
    (:func:`continues_on_resume`).

    Raises:
        RunNotFoundError: no such run.
        InvalidInputError: the target repository is missing, dirty, or lost its base
            branch (the manifest is left unchanged).
    """
    ref = workspace.store.find(run)
    handle = RunHandle(workspace, ref.task_id, ref.run_id)
    manifest = handle.read()
    if not continues_on_resume(manifest):
        return handle
    check_target(Path(manifest.task.repo_path), manifest.task.spec.target.base_branch)

    def reopen(m: RunManifest) -> None:
        m.status = RunStatus.RUNNING
        m.status_reason = m.finished_at = None  # the errors list keeps why it failed
        m.flow_run_id = flow_run_id or m.flow_run_id

    handle.update(reopen, event="run.resumed", flow_run_id=flow_run_id)
    return handle


# -- finishing ---------------------------------------------------------------------


def fail_run(
    handle: RunHandle,
    reason: str,
    *,
    phase: PhaseName | None = None,
    error_type: str = VERDICT_FAILURE,
) -> RunManifest:
    """Mark the run failed with ``reason``; everything it wrote stays.

    ``error_type`` is the error's class name when an error failed the run; the default
    says a verdict did (see :func:`continues_on_resume`).
    """

    def fail(m: RunManifest) -> None:
        m.status = RunStatus.FAILED
        m.status_reason = reason
        m.finished_at = utc_now()
        if not any(e.message == reason for e in m.errors):
            m.errors.append(ErrorRecord(at=utc_now(), phase=phase, type=error_type, message=reason))

    return handle.update(fail, event="run.failed", reason=reason)


def finish_run(
    handle: RunHandle,
    status: RunStatus,
    *,
    reason: str | None = None,
    result: RunResult | None = None,
) -> RunManifest:
    if not status.finished:
        raise InvalidInputError(f"{status} is not a final status")

    def finish(m: RunManifest) -> None:
        m.status = status
        m.status_reason = reason
        m.result = result or m.result
        m.finished_at = utc_now()

    return handle.update(finish, event=f"run.{status.value}", reason=reason)
