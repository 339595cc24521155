"""Settings read once at the edge (environment variables ``ORCHESTRATOR_*``) and passed down."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas import BudgetLimits, SafeId


class Settings(BaseSettings):
    """Where run data lands and which environment's credentials and policies apply."""

    model_config = SettingsConfigDict(env_prefix="ORCHESTRATOR_", extra="ignore")

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
    budgets: dict[SafeId, BudgetLimits] = Field(
        default_factory=dict,
        description="Default budget limits per environment, as JSON, e.g. "
        '\'{"prod": {"tokens": 2000000, "cost_usd": 20}}\'; a task\'s own limits win.',
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
