"""The agent packages re-export their public names with a sorted ``__all__``."""

from __future__ import annotations

import importlib

import pytest

from tests.test_exported_members import _is_submodule, _isort_style


@pytest.mark.parametrize("name", ["agents"])
def test_all_is_sorted_and_complete(name: str) -> None:
    package = importlib.import_module(name)
    exported = package.__all__
    assert exported == sorted(exported, key=_isort_style)
    public = {
        member
        for member in vars(package)
        if not member.startswith("_") and not _is_submodule(package, member)
    }
    assert set(exported) == public


def test_importing_the_agent_layer_pulls_in_no_prefect() -> None:
    import subprocess
    import sys

    code = "import agents, sys; print('prefect' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
