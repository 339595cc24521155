"""Library entries and indexes for the learning library's tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from orchestrator.workspace import Workspace
from schemas import AgentRole, AgentStep
from tests.conftest import sample_manifest


def entry_data(**changes: Any) -> dict[str, Any]:
    """A valid ruff linter entry, with top-level fields replaced by ``changes``."""
    data: dict[str, Any] = {
        "name": "no-print",
        "version": "1.2.0",
        "kind": "linter",
        "tool": "ruff",
        "applies_to": {"languages": ["python"], "globs": ["src/**/*.py"]},
        "run": {"args": ["--select", "T201"]},
        "description": "No print calls in library code.",
        "tags": ["python", "hygiene"],
    }
    return {**data, **changes}


def codemod_data(**changes: Any) -> dict[str, Any]:
    """A valid libcst codemod entry whose script is ``codemods/rename.py``."""
    codemod: dict[str, Any] = {
        "name": "rename-helpers",
        "version": "0.1.0",
        "kind": "codemod",
        "tool": "libcst",
        "run": {"script": "codemods/rename.py", "args": ["--old", "a", "--new", "b"]},
        "description": "Renames a helper function.",
        "tags": ["python", "refactor"],
    }
    return entry_data(**{**codemod, **changes})


def write_yaml(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def record_use(workspace: Workspace, *refs: str) -> None:
    """A run whose build step recorded ``refs`` as used library entries."""
    manifest = sample_manifest()
    manifest.phases.build.steps.append(
        AgentStep(id="build-one", role=AgentRole.BUILDER, library=list(refs))
    )
    workspace.store.create(manifest)
