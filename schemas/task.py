"""The task spec: what an engineer hands to the agent team (``tasks/<id>.yaml``)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, GetJsonSchemaHandler, field_validator, model_validator
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from ._base import SafeId, StrictModel
from .budget import TaskBudget


class GateMode(StrEnum):
    """How an approval gate is decided."""

    REQUIRED = "required"
    """A person decides, from the Prefect UI or the CLI."""
    AUTO = "auto"
    """The policy approves and the manifest records channel ``policy``."""


class CommandPolicy(StrEnum):
    """How codex's own exec/patch approval requests are answered.

    Under codex's ``on-request`` approval policy every exec request is a request to run a
    command OUTSIDE the sandbox, with the worker's access: no policy approves one by
    reading the command; a person decides, or it is denied.
    """

    PATCHES_IN_WORKSPACE = "patches_in_workspace"
    """A patch whose files all resolve inside the workspace is approved; commands go to a
    person (denied in a run where no person is asked)."""
    ASK_PERSON = "ask_person"
    """A person decides every request."""
    DENY = "deny"
    """Every request is denied."""

    @classmethod
    def _missing_(cls, value: object) -> CommandPolicy | None:
        # Task files and manifests written before the rename keep loading.
        name = COMMAND_POLICY_ALIASES.get(str(value))
        return cls(name) if name else None

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler.resolve_ref_schema(handler(core_schema))
        schema["enum"] = [*schema["enum"], *COMMAND_POLICY_ALIASES]
        schema["description"] = (
            f"{schema.get('description', '')}\n\nOld names, read as the new ones: "
            + ", ".join(f"{old} = {new}" for old, new in COMMAND_POLICY_ALIASES.items())
        ).strip()
        return schema


COMMAND_POLICY_ALIASES: dict[str, str] = {
    "allow_in_workspace": "patches_in_workspace",
    "escalate": "ask_person",
}
"""Names :class:`CommandPolicy` had before: an old ``allow_in_workspace`` approved a
command by reading its words, which no longer happens under any name."""


class TargetRepo(StrictModel):
    """The git repository the agents change."""

    repo: str = Field(
        description="Path of the target git repository, relative to the task file's folder "
        "or absolute.",
        min_length=1,
    )
    base_branch: str = Field(default="main", description="Branch the work starts from.")
    test_command: str = Field(
        default="python -m pytest -q",
        description="Command the tester runs in the repository.",
        min_length=1,
    )


LibraryPin = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}(@[^@\s]{1,64})?$",
        description="A learning-library entry and an optional version range: name, "
        "name@^1.2, name@~1.2.3, name@1.2.3.",
    ),
]


class CodemodUse(StrictModel):
    """A library codemod run (or template rendered) in the subtask's worktree before the
    builder's model turn."""

    use: LibraryPin
    args: list[str] = Field(
        default_factory=list,
        max_length=50,
        description="Arguments for this use, e.g. ['--old', 'a', '--new', 'b']; for a "
        "template: ['--to', 'PATH', '--set', 'NAME=VALUE', ...].",
    )


class SubtaskSpec(StrictModel):
    """One unit of work: exactly one builder call."""

    id: SafeId
    title: str = Field(min_length=1, max_length=200)
    acceptance: list[str] = Field(default_factory=list, description="What must hold when done.")
    files: list[str] = Field(default_factory=list, description="Files expected to change.")
    codemods: list[CodemodUse] = Field(
        default_factory=list,
        max_length=10,
        description="Deterministic edits made first, in order; the builder is told what "
        "they changed.",
    )

    @field_validator("files")
    @classmethod
    def _relative_files(cls, files: list[str]) -> list[str]:
        for name in files:
            if name.startswith("/") or ".." in name.split("/"):
                raise ValueError(f"file {name!r} must be relative and stay inside the repository")
        return files


class ExecutionSettings(StrictModel):
    """How the build phase runs its subtasks."""

    parallel: bool = Field(default=False, description="Run subtasks concurrently.")
    max_parallel: int = Field(default=4, ge=1, le=16, description="Concurrent builders at most.")


class GateTimeouts(StrictModel):
    """Seconds a gate waits for a person before it expires (decision ``expired``; the run
    ends ``expired``)."""

    plan: int = Field(default=3600, ge=1, le=7 * 24 * 3600)
    handover: int = Field(default=3600, ge=1, le=7 * 24 * 3600)
    command: int = Field(default=600, ge=1, le=24 * 3600)
    budget: int = Field(default=3600, ge=1, le=7 * 24 * 3600)


class ApprovalSettings(StrictModel):
    """Per-task approval settings; unset values take the environment's default."""

    plan: GateMode | None = Field(default=None, description="Approve the plan.")
    handover: GateMode | None = Field(default=None, description="Approve the result hand-over.")
    commands: CommandPolicy | None = Field(
        default=None, description="Answer codex exec/patch approval requests."
    )
    timeouts: GateTimeouts = Field(default_factory=GateTimeouts)


class DiffBudget(StrictModel):
    """How big the run's change may be before a person has to approve it."""

    max_files: int | None = Field(default=None, ge=1, description="Files changed at most.")
    max_lines: int | None = Field(
        default=None, ge=1, description="Lines added plus lines removed at most."
    )


class TaskSpec(StrictModel):
    """A coding task for the agent team."""

    schema_version: Literal[1] = 1
    id: SafeId
    title: str = Field(min_length=1, max_length=200)
    goal: str = Field(min_length=1, max_length=20_000, description="What the change must achieve.")
    target: TargetRepo
    subtasks: list[SubtaskSpec] | None = Field(
        default=None, description="Fixed subtasks; leave out to let the planner split the goal."
    )
    execution: ExecutionSettings = Field(default_factory=ExecutionSettings)
    approvals: ApprovalSettings = Field(default_factory=ApprovalSettings)
    specs: list[str] | None = Field(
        default=None,
        max_length=50,
        description="The target's spec files or folders checked before the plan; leave "
        "out to use the target's own spec-guard settings (docs/specs/, tasks/specs/).",
    )
    diff_budget: DiffBudget | None = Field(
        default=None, description="Over it, the hand-over waits for a person (diff-budget gate)."
    )
    linters: list[LibraryPin] = Field(
        default_factory=list,
        max_length=20,
        description="Library linters run on the merged result in the test phase; a "
        "finding fails the phase like a failing test.",
    )
    budget: TaskBudget = Field(
        default_factory=TaskBudget,
        description="Spending limits per run and per UTC day; reaching one pauses the run "
        "at a budget gate. Unset limits take the environment's default "
        "(ORCHESTRATOR_BUDGETS).",
    )
    nightly: bool = Field(default=False, description="Run this task in the nightly deployment.")
    labels: list[SafeId] = Field(default_factory=list)

    @field_validator("specs")
    @classmethod
    def _relative_specs(cls, specs: list[str] | None) -> list[str] | None:
        for name in specs or []:
            if name.startswith("/") or ".." in name.split("/"):
                raise ValueError(f"spec {name!r} must be relative and stay inside the repository")
        return specs

    @model_validator(mode="after")
    def _unique_subtask_ids(self) -> TaskSpec:
        if self.subtasks is not None:
            check_unique_ids([s.id for s in self.subtasks])
        return self


def check_unique_ids(ids: list[str]) -> None:
    """Raise ``ValueError`` naming the first id that occurs twice."""
    seen: set[str] = set()
    for subtask_id in ids:
        if subtask_id in seen:
            raise ValueError(f"subtask id {subtask_id!r} occurs twice")
        seen.add(subtask_id)
