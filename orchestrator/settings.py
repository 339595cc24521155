"""Settings read once at the edge (environment variables ``ORCHESTRATOR_*``) and passed down."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict
from pydantic_settings import SettingsError as UnparsableSetting

from schemas import BudgetLimits, DeploymentName, SafeId, TaskBudget

from .exceptions import InvalidInputError

ENV_PREFIX = "ORCHESTRATOR_"


def invalid_variables(exc: ValidationError, prefix: str) -> str:
    """``PREFIX_NAME (what is wrong), ...`` of a settings model that did not validate; the
    values are not shown (a setting may hold a secret)."""
    return ", ".join(_invalid(error["loc"], error["msg"], prefix) for error in exc.errors())


def _invalid(loc: tuple[int | str, ...], message: str, prefix: str) -> str:
    inside = ".".join(str(part) for part in loc[1:])  # where in a JSON value
    return f"{prefix}{str(loc[0]).upper()} ({f'{inside}: ' if inside else ''}{message})"


class Settings(BaseSettings):
    """Where run data lands and which environment's credentials and policies apply."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    def __init__(self, **values: Any) -> None:
        """Read the environment (``values`` win).

        Raises:
            InvalidInputError: A variable does not validate (named; its value not shown).
        """
        try:
            super().__init__(**values)
        except ValidationError as exc:
            message = f"settings are invalid: {invalid_variables(exc, ENV_PREFIX)}"
            raise InvalidInputError(message) from None
        except UnparsableSetting as exc:  # a JSON field that is not JSON
            raise InvalidInputError(f"settings are invalid: {exc}") from None

    home: Path = Field(
        default_factory=Path.cwd,
        description="Folder holding .runs/, out/ and work/ (default: the current folder).",
    )
    env: SafeId = Field(default="dev", description="Environment: selects Vault path and policy.")
    lock_timeout: float = Field(default=60.0, gt=0, description="Seconds to wait for a lock.")
    gc_on_finish: bool = Field(
        default=False,
        description="When a run finishes for good, remove its worktrees and merged subtask "
        "branches, as 'orchestrator gc RUN' does (docs/retention.md).",
    )
    library_index: Path | None = Field(
        default=None,
        description="The learning library's index (default: <home>/library/index.yaml).",
    )
    node_tools: Path | None = Field(
        default=None,
        description="Where npm installed jscodeshift and eslint (default: <home>/tools/node).",
    )
    prices_file: Path | None = Field(
        default=None,
        description="Price table of the models (default: the one shipped with the package).",
    )
    gate_warning_seconds: int = Field(
        default=600,
        ge=0,
        description="Seconds before a gate's deadline that one warning notification goes "
        "out (docs/approvals.md); 0: none. Gates that wait no longer than this get none.",
    )
    notify_block: str | None = Field(
        default=None,
        description="The Prefect notification block the notification automations send "
        "through, as <block type>/<name> (orchestrator setup automations, make serve).",
    )
    subtask_deployment: str | None = Field(
        default=None,
        pattern=r"^[^/]+/[^/]+$",
        description="In parallel mode, build each subtask as a run of this deployment "
        "(flow/deployment, e.g. build-subtask/build-subtask) on the workers of its pool; "
        "unset: in the run's own process (docs/deployments.md, 'Many machines').",
    )
    subtask_remote: str | None = Field(
        default=None,
        description="The git remote (URL or path) that the manager and the subtask workers "
        "share: the base is pushed there, subtask branches come back from there (default: "
        "the target repository's 'origin').",
    )
    subtask_queues: list[str] = Field(
        default_factory=list,
        description="Work queues of the subtask deployment's pool to spread the subtasks "
        'over in turn, as JSON, e.g. \'["machine-a", "machine-b"]\'; empty: the '
        "deployment's own queue.",
    )
    worker_name: str | None = Field(
        default=None,
        description="This worker's name in the manifests of the subtasks it builds "
        "(default: the host name).",
    )
    budgets: dict[SafeId, TaskBudget] = Field(
        default_factory=dict,
        description="Default budget limits per environment, as JSON, e.g. "
        '\'{"prod": {"tokens": 2000000, "wall_seconds": 3600, "daily": {"cost_usd": 50}}}\'; '
        "a task's own limits win.",
    )
    deployment_budgets: dict[DeploymentName, BudgetLimits] = Field(
        default_factory=dict,
        description="Daily limits per Prefect deployment (<flow>/<deployment>), as JSON, "
        'e.g. \'{"nightly/nightly": {"cost_usd": 50, "agent_calls": 200}}\': over every run '
        "the deployment starts in a UTC day, whatever its task or environment.",
    )

    @property
    def runs_dir(self) -> Path:
        return self.home / ".runs"

    @property
    def out_dir(self) -> Path:
        return self.home / "out"

    @property
    def library_index_path(self) -> Path:
        return self.library_index or self.home / "library" / "index.yaml"

    @property
    def node_tools_path(self) -> Path:
        return self.node_tools or self.home / "tools" / "node"

    @property
    def work_dir(self) -> Path:
        """Worktrees of running subtasks."""
        return self.home / "work"
