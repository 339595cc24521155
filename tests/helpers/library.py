"""Library entries and indexes for the learning library's tests."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

from orchestrator.gitops import fresh_worktree, git
from orchestrator.workspace import Workspace
from schemas import AgentRole, AgentStep
from tests.conftest import EXAMPLES, sample_manifest
from tests.helpers.specs import commit_all


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


def sample_git_copy(folder: Path, sample: str = "sample-repo") -> Path:
    """A git repository (branch main, one commit) copied from ``examples/<sample>``."""
    repo = folder / sample
    shutil.copytree(EXAMPLES / sample, repo, ignore=shutil.ignore_patterns("__pycache__"))
    git(repo, "init", "-q", "--initial-branch=main")
    commit_all(repo, sample)
    return repo


def sample_worktree(folder: Path, sample: str = "sample-repo") -> Path:
    """A fresh worktree (branch ``run/<sample>``) of :func:`sample_git_copy`."""
    repo = sample_git_copy(folder, sample)
    base = git(repo, "rev-parse", "HEAD")
    return fresh_worktree(repo, folder / "work" / sample, f"run/{sample}", base).path


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
