from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ORCHESTRATOR = str(Path(sys.executable).parent / "orchestrator")

Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """Run the real ``orchestrator`` console script with its home in a temporary folder."""
    home = tmp_path / "home"

    def run(
        *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        full_env = {**os.environ, "ORCHESTRATOR_HOME": str(home), "COLUMNS": "200", **(env or {})}
        return subprocess.run(
            [ORCHESTRATOR, *args],
            capture_output=True,
            text=True,
            cwd=cwd,
            env=full_env,
            timeout=120,
            check=False,
        )

    return run
