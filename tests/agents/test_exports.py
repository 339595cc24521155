"""The agent packages re-export their public names with a sorted ``__all__``."""

from __future__ import annotations

import importlib

import pytest

from tests.test_exported_members import _isort_style, _public


@pytest.mark.parametrize("name", ["agents"])
def test_all_is_sorted_and_complete(name: str) -> None:
    package = importlib.import_module(name)
    exported = package.__all__
    assert exported == sorted(exported, key=_isort_style)
    assert set(exported) == _public(package)


def test_the_app_server_backend_is_imported_on_first_use() -> None:
    import subprocess
    import sys

    code = (
        "import agents, sys; before = 'openai_codex' in sys.modules;"
        "agents.AppServerSession; print(before, 'openai_codex' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["False", "True"]


def test_importing_the_agent_layer_pulls_in_no_prefect() -> None:
    import subprocess
    import sys

    code = "import agents, sys; print('prefect' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
