"""The sample files the demo, ``make serve`` and the tests use, wherever the project is installed.

They live in the project's ``examples/`` folder, which is also the package
``devstack.examples`` (``[tool.setuptools.package-dir]`` in ``pyproject.toml``, its files
installed as package data), so :func:`examples_dir` finds them through
``importlib.resources`` in a checkout, an editable install and a wheel install alike::

    examples/sample-repo/       the project the sample tasks change (textkit)
    examples/tasks/*.yaml       the sample tasks
    examples/replay/<set>/      replay fixture sets (sample, sample-failing, escalation)
"""

from __future__ import annotations

import os
import shutil
from importlib.resources import files
from pathlib import Path

from orchestrator.exceptions import DevStackError
from orchestrator.gitops import check_target, git

SAMPLE_REPO = Path("work") / "sample-repo"
"""Where the sample repository is prepared, relative to the orchestrator home."""
SAMPLE_TASK = "add-text-helpers"
SAMPLE_FIXTURES = "sample"


def examples_dir() -> Path:
    """The folder of the sample files (the package ``devstack.examples``).

    Raises:
        DevStackError: the package is not on the file system (e.g. a zip import).
    """
    root = files("devstack.examples")
    if not isinstance(root, Path):
        raise DevStackError(f"the sample files are not a folder: {root}", service="samples")
    return root


def sample_task(name: str = SAMPLE_TASK) -> Path:
    """The sample task file ``examples/tasks/<name>.yaml``."""
    return examples_dir() / "tasks" / f"{name}.yaml"


def fixture_set(name: str = SAMPLE_FIXTURES) -> Path:
    """The replay fixture set ``examples/replay/<name>/``."""
    return examples_dir() / "replay" / name


def prepare_sample_repo(dest: Path, *, source: Path | None = None) -> Path:
    """A git repository at ``dest`` with the sample project committed on ``main``.

    Idempotent: a repository already there is checked (branch ``main``, clean) and kept.

    Raises:
        InvalidInputError: ``dest`` exists but is not a clean git repository with ``main``.
    """
    dest = dest.resolve()
    if dest.exists():
        check_target(dest, "main")
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    temp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    shutil.rmtree(temp, ignore_errors=True)
    ignore = shutil.ignore_patterns("__pycache__", ".pytest_cache")
    shutil.copytree(source or examples_dir() / "sample-repo", temp, ignore=ignore)
    git(temp, "init", "--quiet", "--initial-branch=main")
    git(temp, "add", "--all")
    git(temp, "commit", "--quiet", "--message", "The sample project (textkit)")
    temp.rename(dest)  # appears complete or not at all
    return dest
