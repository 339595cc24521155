"""Subtasks built on other machines: the manager's and the worker's halves, without Prefect.

The manager pushes the run's base commit to a git remote both sides reach
(:func:`push_base`), hands each worker a :class:`~schemas.SubtaskJob`
(:func:`subtask_job`), and, once a worker's run ended, fetches the subtask branch and
records the worker's :class:`~schemas.SubtaskBuild` in its own manifest
(:func:`record_build`). A worker opens a run of its own under its own ORCHESTRATOR_HOME
with the same task and run ids (:func:`open_worker_run`), on a bare clone of the remote,
builds the subtask there with :func:`agents.steps.build_step` as the manager would,
pushes the branch (:func:`push_subtask`) and hands back what it did
(:func:`subtask_build`).

What a worker hands back is untrusted like any agent's text: it is validated, and its
branch must be the subtask's own and, once fetched, at the commit it names.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from orchestrator.exceptions import InvalidInputError
from orchestrator.gitops import fetch_branch, mirror_clone, origin_url, push_commit
from orchestrator.lifecycle import ACTOR, RunHandle, check_outside_agent_roots
from orchestrator.runstore import add_artifacts
from orchestrator.workspace import Workspace
from schemas import (
    BuiltBy,
    PhaseName,
    RunManifest,
    StepStatus,
    SubtaskBuild,
    SubtaskJob,
    SubtaskRecord,
    utc_now,
)

from .steps import build_artifact, build_diff_artifact, build_step_id, planned_subtask

PLANNED_FIELDS = {"id", "title", "acceptance", "files", "codemods", "step_id", "branch"}
"""What a subtask's record holds before its build: what a worker is handed."""
CLONES_DIR = "remotes"
"""Under a worker's ORCHESTRATOR_HOME: one bare clone per remote it builds for."""


def base_branch(handle: RunHandle) -> str:
    """The branch on the remote that holds the run's base commit."""
    return f"orchestrator/{handle.task_id}/{handle.run_id}/base"


def dispatch_key(job: SubtaskJob, attempt: int = 1) -> str:
    """The idempotency key of a subtask's deployment run: one per run, subtask and attempt
    (a crashed build's next attempt is a run of its own)."""
    key = f"build-subtask:{job.task_id}/{job.run_id}/{job.subtask.id}"
    return key if attempt == 1 else f"{key}#{attempt}"


def subtask_remote(handle: RunHandle) -> str:
    """The remote that the workers fetch from and push to (the setting, else ``origin``).

    Raises:
        InvalidInputError: neither is there.
    """
    remote = handle.workspace.settings.subtask_remote
    remote = remote or origin_url(Path(handle.read().task.repo_path))
    if not remote:
        raise InvalidInputError(
            "subtasks go to a work pool but there is no git remote to share with its "
            "workers: set ORCHESTRATOR_SUBTASK_REMOTE or give the target an 'origin'"
        )
    return remote


def push_base(handle: RunHandle, remote: str) -> str:
    """Push the run's base commit to ``remote`` (:func:`base_branch`); that branch."""
    manifest = handle.read()
    branch = base_branch(handle)
    push_commit(Path(manifest.task.repo_path), remote, manifest.task.base_commit, branch)
    return branch


def subtask_job(
    handle: RunHandle,
    subtask_id: str,
    *,
    remote: str,
    base_ref: str,
    codex_block: str,
    vault_block: str,
) -> SubtaskJob:
    """Everything a worker needs to build ``subtask_id`` (no secret: it has its own)."""
    manifest = handle.read()
    record = planned_subtask(manifest, subtask_id, label=handle.label)
    planned = SubtaskRecord.model_validate(record.model_dump(include=PLANNED_FIELDS))
    return SubtaskJob(
        task_id=manifest.task_id,
        run_id=manifest.run_id,
        env=manifest.env,
        task=manifest.task,
        mode=manifest.mode,
        approval_policy=manifest.approval_policy,
        budget=manifest.budget,
        subtask=planned,
        remote=remote,
        base_ref=base_ref,
        codex_block=codex_block,
        vault_block=vault_block,
    )


# -- the worker's half -------------------------------------------------------------


def clone_path(workspace: Workspace, remote: str) -> Path:
    digest = hashlib.sha256(remote.encode()).hexdigest()[:16]
    return workspace.settings.home / CLONES_DIR / f"{digest}.git"


def open_worker_run(workspace: Workspace, job: SubtaskJob) -> RunHandle:
    """The worker's own run of the job's task and run ids, on its clone of the remote.

    The base branch is fetched first. A run the worker made for this run before is
    continued (a subtask it built is not built again; a subtask of the run it had not
    seen, such as another worker's crashed one, is added); else one is created with the
    job's task, policy and budget, and only this subtask.

    Raises:
        GitError: the remote or its base branch cannot be fetched.
        InvalidInputError: the base branch is not at the run's base commit, or the clone
            lies where agents can write.
    """
    clone = mirror_clone(clone_path(workspace, job.remote), job.remote)
    if fetch_branch(clone, job.remote, job.base_ref) != job.task.base_commit:
        raise InvalidInputError(
            f"the remote's {job.base_ref} is not at the run's base commit "
            f"{job.task.base_commit}: something else moved it"
        )
    handle = RunHandle(workspace, job.task_id, job.run_id)
    if handle.manifest_path.exists():
        _add_subtask(handle, job.subtask)
        return handle
    check_outside_agent_roots(workspace, clone, task_id=job.task_id, run_id=job.run_id)
    now = utc_now()
    manifest = RunManifest(
        task_id=job.task_id,
        run_id=job.run_id,
        env=job.env,
        created_at=now,
        updated_at=now,
        task=job.task.model_copy(update={"repo_path": str(clone)}),
        mode=job.mode,
        approval_policy=job.approval_policy,
        budget=job.budget,
        subtasks=[job.subtask],
    )
    workspace.store.create(manifest, actor=ACTOR)
    return handle


def _add_subtask(handle: RunHandle, planned: SubtaskRecord) -> None:
    if handle.read().subtask(planned.id) is not None:
        return

    def add(m: RunManifest) -> None:
        m.subtasks.append(planned)

    handle.update(add, event="subtask.received", subtask=planned.id)


def push_subtask(handle: RunHandle, job: SubtaskJob) -> None:
    """Push the built subtask's branch to the remote."""
    record = handle.read().subtask(job.subtask.id)
    assert record is not None and record.branch and record.commit
    push_commit(Path(handle.read().task.repo_path), job.remote, record.commit, record.branch)


def subtask_build(handle: RunHandle, subtask_id: str, built_by: BuiltBy) -> SubtaskBuild:
    """What the worker hands back for a built subtask: its record, step and artifacts."""
    manifest = handle.read()
    record, step = manifest.subtask(subtask_id), manifest.step(build_step_id(subtask_id))
    report = manifest.artifact(build_artifact(subtask_id))
    diff = manifest.artifact(build_diff_artifact(subtask_id))
    assert record is not None and step is not None and report is not None and diff is not None
    return SubtaskBuild(
        subtask=record.model_copy(update={"built_by": built_by}),
        step=step,
        report=handle.read_artifact(report),
        diff=handle.read_artifact(diff),
        built_by=built_by,
    )


# -- the manager's half ------------------------------------------------------------


def record_build(handle: RunHandle, remote: str, build: SubtaskBuild) -> SubtaskRecord:
    """Fetch a worker's subtask branch and record its build in the run's manifest.

    Raises:
        InvalidInputError: the build is not of a planned subtask, names another branch,
            or the fetched branch is not at the commit it names.
        GitError: the branch cannot be fetched.
    """
    subtask_id = build.subtask.id
    planned = handle.read().subtask(subtask_id)
    if planned is None or planned.branch is None or build.subtask.branch != planned.branch:
        raise InvalidInputError(
            f"run {handle.label}: a worker's build of {subtask_id!r} is not of a planned "
            "subtask branch"
        )
    repo = Path(handle.read().task.repo_path)
    fetched = fetch_branch(repo, remote, planned.branch)
    if build.step.status is not StepStatus.SUCCEEDED or fetched != build.subtask.commit:
        raise InvalidInputError(
            f"run {handle.label}: the worker's build of {subtask_id!r} names commit "
            f"{build.subtask.commit}, the remote has {fetched}"
        )
    artifacts = [
        handle.store_artifact(
            build_artifact(subtask_id), build.report, kind="build", step_id=build.step.id
        ),
        handle.store_artifact(
            build_diff_artifact(subtask_id), build.diff, kind="diff", step_id=build.step.id
        ),
    ]
    step = build.step.model_copy(
        update={"id": build_step_id(subtask_id), "output_artifact": artifacts[0].name}
    )

    def record(m: RunManifest) -> None:
        steps = m.phases.get(PhaseName.BUILD).steps
        steps[:] = [s for s in steps if s.id != step.id] + [step]
        add_artifacts(m, artifacts)
        subtask = m.subtask(subtask_id)
        assert subtask is not None
        subtask.status, subtask.commit = StepStatus.SUCCEEDED, fetched
        subtask.worktree, subtask.built_by = None, build.built_by
        subtask.builder_calls += build.subtask.builder_calls

    handle.update(
        record,
        event="subtask.built_remotely",
        step=step.id,
        flow_run_id=build.built_by.flow_run_id,
        worker=build.built_by.worker,
    )
    manifest = handle.read()
    built = manifest.subtask(subtask_id)
    assert built is not None
    return built
