"""What the manager hands a worker to build one subtask, and what the worker hands back.

A subtask fanned out to a work pool is built by a deployment run on a worker that
shares nothing with the manager but the Prefect API, a git remote of the target and
Prefect result storage: the job (a flow parameter) carries everything the builder
needs, and the build (a persisted flow result) everything the manager records.
Neither holds a secret: the worker reads its own credentials from Vault.
"""

from __future__ import annotations

from pydantic import Field

from ._base import SafeId, StrictModel
from .budget import RunBudget
from .manifest import AgentStep, ApprovalPolicy, BuiltBy, ModeDecision, SubtaskRecord, TaskSnapshot


class SubtaskJob(StrictModel):
    """One subtask to build on a worker: the parameter of the ``build-subtask`` flow."""

    task_id: SafeId
    run_id: SafeId
    env: SafeId
    task: TaskSnapshot = Field(
        description="The run's task as it started (its repo_path is the manager's; the "
        "worker builds on its own clone of the remote)."
    )
    mode: ModeDecision
    approval_policy: ApprovalPolicy | None = None
    budget: RunBudget | None = None
    subtask: SubtaskRecord = Field(description="The subtask as planned.")
    remote: str = Field(
        pattern=r"^[^-\s]",
        description="The git remote of the target (URL or path), as workers see it.",
    )
    base_ref: str = Field(
        min_length=1, description="The branch on the remote that holds the base commit."
    )
    codex_block: str = "default"
    vault_block: str = "default"


class SubtaskBuild(StrictModel):
    """A worker's build of one subtask: the persisted result of a ``build-subtask`` run."""

    subtask: SubtaskRecord = Field(description="As built: status, branch, commit, calls.")
    step: AgentStep = Field(description="The builder step: commands, exit codes, tokens.")
    report: str = Field(description="The build report artifact (JSON).")
    diff: str = Field(description="The subtask's diff against the base commit.")
    built_by: BuiltBy
