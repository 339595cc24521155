"""The run manifest: everything one run did, as data (``.runs/<task>/<run>/manifest.json``)."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field, model_validator

from ._base import DeploymentName, SafeId, Sha256, StrictModel, UtcDatetime
from .approval import Approval
from .budget import RunBudget
from .codex import AgentBackend
from .library import LibraryRef
from .sync import SyncRecord
from .task import CodemodUse, CommandPolicy, GateMode, TaskSpec

MANIFEST_SCHEMA_VERSION: Literal[1] = 1


class RunStatus(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REJECTED = "rejected"
    EXPIRED = "expired"
    """A gate's deadline passed with no decision: the run stopped there."""

    @property
    def finished(self) -> bool:
        return self in {
            RunStatus.SUCCEEDED,
            RunStatus.FAILED,
            RunStatus.REJECTED,
            RunStatus.EXPIRED,
        }

    @property
    def stopped(self) -> bool:
        """Stopped at a gate: rejected there, or its deadline passed."""
        return self in {RunStatus.REJECTED, RunStatus.EXPIRED}


class StepStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


class PhaseName(StrEnum):
    PLAN = "plan"
    BUILD = "build"
    TEST = "test"
    REVIEW = "review"


class AgentRole(StrEnum):
    PLANNER = "planner"
    BUILDER = "builder"
    TESTER = "tester"
    REVIEWER = "reviewer"


class ExecutionMode(StrEnum):
    MCP = "mcp"
    PARALLEL = "parallel"


class ModeDecision(StrictModel):
    """The execution mode and why it was chosen."""

    mode: ExecutionMode
    reason: str


class ApprovalPolicy(StrictModel):
    """The gate settings in force for this run, after task and environment defaults."""

    plan: GateMode
    handover: GateMode
    commands: CommandPolicy
    plan_timeout_seconds: int = Field(ge=1)
    handover_timeout_seconds: int = Field(ge=1)
    command_timeout_seconds: int = Field(ge=1)
    source: str = Field(description="Where the policy came from, e.g. 'env dev + task'.")


class TaskSnapshot(StrictModel):
    """The task spec as it was when the run started."""

    path: str
    sha256: Sha256
    spec: TaskSpec
    repo_path: str = Field(description="Absolute path of the target repository.")
    base_commit: str = Field(
        pattern=r"^[0-9a-f]{40}$", description="The base branch's commit the run started from."
    )


class CommandRecord(StrictModel):
    """One command an agent ran, with its real exit code."""

    command: str
    cwd: str | None = None
    exit_code: int | None = None
    status: str | None = Field(default=None, description="codex's status, e.g. 'completed'.")
    duration_ms: int | None = Field(default=None, ge=0)
    reason: str | None = Field(
        default=None, description="Why it was denied, for a denied request to run it."
    )


class PatchRecord(StrictModel):
    """One patch an agent applied."""

    files: list[str] = Field(default_factory=list)
    success: bool


class TokenUsage(StrictModel):
    input_tokens: int = Field(default=0, ge=0)
    cached_input_tokens: int = Field(default=0, ge=0)
    output_tokens: int = Field(default=0, ge=0)
    reasoning_output_tokens: int = Field(default=0, ge=0)
    total_tokens: int = Field(default=0, ge=0)

    def __add__(self, other: TokenUsage) -> TokenUsage:
        fields = type(self).model_fields
        return TokenUsage(**{name: getattr(self, name) + getattr(other, name) for name in fields})


class UsageTotals(StrictModel):
    """Usage summed over agent steps; derived from the steps, never written by hand."""

    tokens: TokenUsage = Field(default_factory=TokenUsage)
    agent_calls: int = Field(default=0, ge=0, description="Steps that called an agent.")
    cost_usd: float | None = Field(
        default=0.0,
        ge=0,
        description="Cost in USD from the price table; null (unknown) when a step's model "
        "has no price.",
    )
    unpriced_models: list[str] = Field(
        default_factory=list, description="Models of the steps whose cost is unknown."
    )

    @classmethod
    def of_steps(cls, steps: list[AgentStep]) -> UsageTotals:
        tokens = sum((s.tokens for s in steps), TokenUsage())
        unpriced = sorted({s.model or "unknown" for s in steps if s.cost_usd is None})
        cost = None if unpriced else round(sum(s.cost_usd or 0.0 for s in steps), 6)
        calls = sum(1 for s in steps if s.model is not None)
        return cls(tokens=tokens, agent_calls=calls, cost_usd=cost, unpriced_models=unpriced)

    @classmethod
    def of_totals(cls, totals: list[UsageTotals]) -> UsageTotals:
        unpriced = sorted({m for t in totals for m in t.unpriced_models})
        return cls(
            tokens=sum((t.tokens for t in totals), TokenUsage()),
            agent_calls=sum(t.agent_calls for t in totals),
            cost_usd=None if unpriced else round(sum(t.cost_usd or 0.0 for t in totals), 6),
            unpriced_models=unpriced,
        )


class StepRestart(StrictModel):
    """How an attempt began that follows one interrupted mid-call (a killed run resumed)."""

    thread_id: str = Field(description="The interrupted attempt's codex thread.")
    continued: bool = Field(
        description="True: that thread was resumed in a new server and went on; false: the "
        "step was redone from the start, on a new thread and a clean working tree."
    )
    reason: str = Field(max_length=2000, description="Why it was continued or redone.")


class AgentStep(StrictModel):
    """One agent call (one Prefect task): the unit that resume skips when done."""

    id: SafeId = Field(
        description="Unique in the run: 'plan', 'build-<subtask>', 'test', 'review'."
    )
    role: AgentRole
    status: StepStatus = StepStatus.PENDING
    attempt: int = Field(default=0, ge=0, description="Times this step was started.")
    backend: AgentBackend | None = Field(
        default=None, description="The agent backend of the step's latest attempt."
    )
    codex_version: str | None = Field(
        default=None,
        max_length=64,
        description="The codex version the backend's server reported for that attempt.",
    )
    thread_id: str | None = Field(
        default=None, description="The codex thread of the latest attempt, once it started."
    )
    restart: StepRestart | None = Field(
        default=None,
        description="How the latest attempt began after an interrupted one; null otherwise.",
    )
    task_run_id: str | None = Field(default=None, description="Prefect task run id.")
    prompt_sha256: Sha256 | None = None
    commands: list[CommandRecord] = Field(default_factory=list)
    patches: list[PatchRecord] = Field(default_factory=list)
    tokens: TokenUsage = Field(default_factory=TokenUsage)
    model: str | None = Field(
        default=None, description="The model slug the agent call used; null without a call."
    )
    cost_usd: float | None = Field(
        default=0.0,
        ge=0,
        description="The call's cost in USD from the price table when it was recorded; "
        "null (unknown) when the table has no price for its model.",
    )
    library: list[LibraryRef] = Field(
        default_factory=list,
        description="Every learning-library entry the step used, as name@version; a "
        "version recorded here can no longer change.",
    )
    output_artifact: str | None = Field(
        default=None, description="Name of the artifact holding the step's result."
    )
    started_at: UtcDatetime | None = None
    finished_at: UtcDatetime | None = None
    duration_ms: int | None = Field(default=None, ge=0)
    error: str | None = None


class PhaseRecord(StrictModel):
    """One phase flow of the run."""

    status: StepStatus = StepStatus.PENDING
    flow_run_id: str | None = None
    started_at: UtcDatetime | None = None
    finished_at: UtcDatetime | None = None
    steps: list[AgentStep] = Field(default_factory=list)
    usage: UsageTotals = Field(
        default_factory=UsageTotals, description="The sum over this phase's steps (derived)."
    )


class Phases(StrictModel):
    plan: PhaseRecord = Field(default_factory=PhaseRecord)
    build: PhaseRecord = Field(default_factory=PhaseRecord)
    test: PhaseRecord = Field(default_factory=PhaseRecord)
    review: PhaseRecord = Field(default_factory=PhaseRecord)

    def get(self, name: PhaseName) -> PhaseRecord:
        phase: PhaseRecord = getattr(self, name.value)
        return phase


class BuiltBy(StrictModel):
    """Where a subtask fanned out to a work pool was built (a deployment run on a worker)."""

    flow_run_id: str = Field(description="The Prefect flow run that built the subtask.")
    worker: str = Field(
        description="The worker's name (ORCHESTRATOR_WORKER_NAME, default its host name)."
    )
    home: str = Field(description="The worker's ORCHESTRATOR_HOME, on its own machine.")


class SubtaskRecord(StrictModel):
    """One subtask: one builder call in its own worktree and branch (the one-subtask rule)."""

    id: SafeId
    title: str
    acceptance: list[str] = Field(default_factory=list)
    files: list[str] = Field(default_factory=list)
    codemods: list[CodemodUse] = Field(default_factory=list)
    status: StepStatus = StepStatus.PENDING
    step_id: str | None = None
    branch: str | None = None
    worktree: str | None = None
    commit: str | None = None
    builder_calls: int = Field(default=0, ge=0, description="Builder calls made for it.")
    built_by: BuiltBy | None = Field(
        default=None,
        description="The worker and flow run that built it; null when built in the run's "
        "own process.",
    )


class ArtifactRecord(StrictModel):
    """A file the run wrote, under its run folder."""

    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*$", description="Path relative to the run folder."
    )
    kind: str = Field(default="file")
    sha256: Sha256
    size: int = Field(ge=0)
    step_id: str | None = None
    created_at: UtcDatetime


class ErrorRecord(StrictModel):
    at: UtcDatetime
    phase: PhaseName | None = None
    step_id: str | None = None
    type: str
    message: str


class RunResult(StrictModel):
    """What the run hands over: the result branch with every subtask merged."""

    branch: str | None = None
    commit: str | None = None
    diff_stat: str = ""
    tests_passed: bool | None = None
    verdict: str | None = None


class DeploymentRef(StrictModel):
    """The Prefect deployment whose flow run started a run (a nightly run's pipeline
    subflows: the nightly deployment's)."""

    id: str = Field(min_length=1, max_length=64, description="The deployment's id.")
    name: DeploymentName


class RunManifest(StrictModel):
    """The record of one run."""

    schema_version: Literal[1] = MANIFEST_SCHEMA_VERSION
    task_id: SafeId
    run_id: SafeId
    env: SafeId
    status: RunStatus = RunStatus.RUNNING
    status_reason: str | None = None
    flow_run_id: str | None = Field(default=None, description="The manager flow run's id.")
    deployment: DeploymentRef | None = Field(
        default=None,
        description="The Prefect deployment that started the run; null for a run started "
        "outside one (orchestrator run, a flow called locally) and in manifests written "
        "before this field existed.",
    )
    created_at: UtcDatetime
    updated_at: UtcDatetime
    finished_at: UtcDatetime | None = None
    task: TaskSnapshot
    mode: ModeDecision
    approval_policy: ApprovalPolicy | None = None
    phases: Phases = Field(default_factory=Phases)
    subtasks: list[SubtaskRecord] = Field(default_factory=list)
    approvals: list[Approval] = Field(default_factory=list)
    artifacts: list[ArtifactRecord] = Field(default_factory=list)
    sync: SyncRecord | None = None
    errors: list[ErrorRecord] = Field(default_factory=list)
    result: RunResult | None = None
    budget: RunBudget | None = Field(
        default=None, description="The run's budget limits; null: no limit."
    )
    usage: UsageTotals = Field(
        default_factory=UsageTotals, description="The sum over every phase (derived)."
    )

    @model_validator(mode="after")
    def _derive_usage(self) -> RunManifest:
        """The totals always equal the sums over the steps: recomputed on every load and
        every assignment (the run store sets ``updated_at`` on each write).

        Written through ``__dict__``: an assignment would run this validator again.
        """
        phases = [self.phases.get(name) for name in PhaseName]
        for phase in phases:
            phase.__dict__["usage"] = UsageTotals.of_steps(phase.steps)
        self.__dict__["usage"] = UsageTotals.of_totals([p.usage for p in phases])
        return self

    def artifact(self, name: str) -> ArtifactRecord | None:
        return next((a for a in self.artifacts if a.name == name), None)

    def step(self, step_id: str) -> AgentStep | None:
        for phase in PhaseName:
            for step in self.phases.get(phase).steps:
                if step.id == step_id:
                    return step
        return None

    def approval(self, approval_id: str) -> Approval | None:
        return next((a for a in self.approvals if a.id == approval_id), None)

    def subtask(self, subtask_id: str) -> SubtaskRecord | None:
        return next((s for s in self.subtasks if s.id == subtask_id), None)
