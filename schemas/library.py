"""The learning library: versioned codemods, linters and templates, and their index."""

from __future__ import annotations

from enum import StrEnum
from pathlib import PurePosixPath
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from ._base import SafeId, Sha256, StrictModel, UtcDatetime

SEMVER_PATTERN = (
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*)?$"
)
# Build metadata (``+build``) is left out: it does not order versions, so 1.2.0+a and
# 1.2.0+b would be two entries no range could tell apart.
LIBRARY_INDEX_VERSION: Literal[1] = 1
LIBRARY_REF_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}@" + SEMVER_PATTERN.removeprefix("^")

SemVer = Annotated[
    str,
    Field(
        pattern=SEMVER_PATTERN,
        description="A semantic version (semver.org) without build metadata, e.g. 1.2.0.",
    ),
]

LibraryRef = Annotated[
    str,
    Field(pattern=LIBRARY_REF_PATTERN, description="One version of an entry: name@version."),
]


class LibraryKind(StrEnum):
    CODEMOD = "codemod"
    LINTER = "linter"
    TEMPLATE = "template"


class LibraryTool(StrEnum):
    LIBCST = "libcst"
    RUFF = "ruff"
    JSCODESHIFT = "jscodeshift"
    ESLINT = "eslint"
    JINJA = "jinja"
    COMMAND = "command"


# Tools made for one kind of entry; ``command`` serves any kind.
TOOL_KINDS: dict[LibraryTool, frozenset[LibraryKind]] = {
    LibraryTool.LIBCST: frozenset({LibraryKind.CODEMOD}),
    LibraryTool.JSCODESHIFT: frozenset({LibraryKind.CODEMOD}),
    LibraryTool.RUFF: frozenset({LibraryKind.LINTER}),
    LibraryTool.ESLINT: frozenset({LibraryKind.LINTER}),
    LibraryTool.JINJA: frozenset({LibraryKind.TEMPLATE}),
    LibraryTool.COMMAND: frozenset(LibraryKind),
}
# Tools that run a file of the library (the codemod module, the transform, the template).
TOOLS_WITH_SCRIPT = frozenset({LibraryTool.LIBCST, LibraryTool.JSCODESHIFT, LibraryTool.JINJA})


def _check_relative(value: str) -> str:
    path = PurePosixPath(value)
    if path.is_absolute() or ".." in path.parts or "\\" in value:
        raise ValueError(f"{value!r} must be a path inside the library folder, with '/'")
    return value


LibraryPath = Annotated[str, Field(min_length=1, max_length=500), AfterValidator(_check_relative)]


class LibraryScope(StrictModel):
    """What an entry applies to."""

    languages: list[str] = Field(min_length=1, description="e.g. python, javascript.")
    globs: list[str] = Field(
        default_factory=list, description="Files it touches or checks, e.g. src/**/*.py."
    )


class LibraryRun(StrictModel):
    """How an entry runs; any change here needs at least a minor version bump."""

    script: LibraryPath | None = Field(
        default=None,
        description="The file the tool runs, relative to the index's folder: the libcst "
        "codemod module, the jscodeshift transform, the Jinja template, an eslint or ruff "
        "configuration.",
    )
    script_sha256: Sha256 | None = Field(
        default=None, description="The script's content hash, filled in when it is recorded."
    )
    args: list[str] = Field(
        default_factory=list,
        description="Arguments for the tool, e.g. ['--select', 'T201'] for ruff; for "
        "'command', the whole argument vector.",
    )
    timeout_seconds: int = Field(default=300, ge=1, le=3600)


class LibraryEntry(StrictModel):
    """One version of one library entry; ``name`` and ``version`` identify it."""

    name: SafeId
    version: SemVer
    kind: LibraryKind
    tool: LibraryTool
    applies_to: LibraryScope
    run: LibraryRun
    description: str = Field(min_length=1, max_length=2000)
    tags: list[str] = Field(default_factory=list)
    origin: str | None = Field(
        default=None,
        max_length=1000,
        description="Where the entry came from, e.g. the draft and run a person accepted "
        "it from (written by 'library accept').",
    )

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @model_validator(mode="after")
    def _tool_fits(self) -> LibraryEntry:
        if self.kind not in TOOL_KINDS[self.tool]:
            raise ValueError(f"tool {self.tool.value!r} does not run {self.kind.value} entries")
        if self.tool in TOOLS_WITH_SCRIPT and self.run.script is None:
            raise ValueError(f"tool {self.tool.value!r} needs run.script")
        if self.tool is LibraryTool.COMMAND and not self.run.args:
            raise ValueError("tool 'command' needs run.args (the argument vector)")
        return self


class DraftOrigin(StrEnum):
    """What made a run propose a library entry."""

    PLAN_REJECTED = "plan-rejected"
    HANDOVER_REJECTED = "handover-rejected"
    CHANGES_REQUESTED = "changes-requested"


class LibraryDraft(StrictModel):
    """A proposal for the library from a run a person rejected or a reviewer sent back.

    A draft is only a pointer and a reason: nothing enters the index until a person
    accepts it with an entry (``orchestrator library accept DRAFT --entry FILE``).
    """

    id: SafeId
    created_at: UtcDatetime
    origin: DraftOrigin
    task_id: SafeId
    run_id: SafeId
    reason: str = Field(max_length=4000, description="The rejection's or the reviewer's words.")
    accepted_as: LibraryRef | None = Field(
        default=None, description="The entry a person recorded from it, once accepted."
    )
    accepted_by: str | None = Field(default=None, max_length=200)


class LibraryIndex(StrictModel):
    """``library/index.yaml``: every recorded version of every entry."""

    schema_version: Literal[1] = LIBRARY_INDEX_VERSION
    entries: list[LibraryEntry] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> LibraryIndex:
        seen: set[str] = set()
        for entry in self.entries:
            if entry.ref in seen:
                raise ValueError(f"{entry.ref} is in the index twice")
            seen.add(entry.ref)
        return self
