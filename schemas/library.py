"""The learning library: reusable codemods, lint rules, templates and prompts, versioned."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from ._base import SafeId, Sha256, StrictModel


class LibraryKind(StrEnum):
    CODEMOD = "codemod"
    LINTER = "linter"
    TEMPLATE = "template"
    PROMPT = "prompt"


class LibraryEntry(StrictModel):
    """One entry of the library index, pinned by semantic version and content hash."""

    id: SafeId
    kind: LibraryKind
    name: str = Field(min_length=1, max_length=200)
    version: str = Field(
        pattern=r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$",
        description="Semantic version.",
    )
    description: str = ""
    path: str = Field(min_length=1, description="Location relative to the library root.")
    sha256: Sha256
    tags: list[str] = Field(default_factory=list)
