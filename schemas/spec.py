"""Spec files: the front matter of a Markdown spec, the guard's settings and its report."""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from pydantic import ConfigDict, Field

from ._base import StrictModel


class SpecStatus(StrEnum):
    DRAFT = "draft"
    ACTIVE = "active"
    ARCHIVED = "archived"
    DONE = "done"
    SUPERSEDED = "superseded"


INACTIVE_SPEC_STATUSES = frozenset({SpecStatus.ARCHIVED, SpecStatus.DONE, SpecStatus.SUPERSEDED})


class SpecRisk(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class SpecFrontMatter(StrictModel):
    """The YAML block between the ``---`` lines at the top of a spec file."""

    id: str = Field(min_length=1, max_length=200, description="The spec's stable id.")
    title: str = Field(min_length=1, max_length=300)
    relates_to: str | list[str] | None = Field(
        default=None, description="The task, PRD or spec files this spec belongs to."
    )
    risk: SpecRisk
    owners: list[str] = Field(min_length=1, description="Who reviews it.")
    last_review: date | None = Field(
        default=None, description="Day of the last review (YYYY-MM-DD); required while active."
    )
    status: SpecStatus = Field(
        default=SpecStatus.ACTIVE,
        description="archived, done and superseded specs are not checked.",
    )

    @property
    def active(self) -> bool:
        return self.status not in INACTIVE_SPEC_STATUSES


class SpecRule(StrEnum):
    """What a finding says is wrong."""

    STALE_REVIEW = "stale-review"
    FUTURE_REVIEW = "future-review"
    MISSING_REVIEW = "missing-review"
    CODE_WITHOUT_SPEC = "code-without-spec"


class SpecGuardConfig(StrictModel):
    """``[tool.orchestrator.spec-guard]`` in the target's ``pyproject.toml``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    spec_dirs: list[str] = Field(
        default_factory=lambda: ["docs/specs", "tasks/specs"],
        alias="spec-dirs",
        description="Folders (relative to the repository) whose *.md files are specs.",
    )
    code_paths: list[str] = Field(
        default_factory=list,
        alias="code-paths",
        description="Files or folders whose change needs a spec change; empty: every file "
        "outside the spec folders.",
    )
    max_age_days: int = Field(
        default=30, ge=0, alias="max-age-days", description="Days a review stays fresh."
    )


class SpecFinding(StrictModel):
    file: str = Field(description="Path relative to the repository.")
    rule: SpecRule
    detail: str


class SpecGuardReport(StrictModel):
    """What ``orchestrator spec-guard --json`` prints."""

    repo: str
    today: date
    max_age_days: int = Field(ge=0)
    base: str | None = None
    checked: list[str] = Field(default_factory=list, description="Active specs checked.")
    skipped: list[str] = Field(default_factory=list, description="Inactive specs skipped.")
    findings: list[SpecFinding] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings
