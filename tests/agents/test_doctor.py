"""``orchestrator doctor``: both backends, their versions, the sandbox (real codex)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agents.doctor import check_backends
from schemas import CodexServerConfig

pytestmark = [pytest.mark.anyio, pytest.mark.integration, pytest.mark.timeout(90)]

REPO_ROOT = Path(__file__).resolve().parents[2]


async def test_both_backends_are_installed_with_their_pinned_codex_and_a_working_sandbox() -> None:
    statuses = {s.backend: s for s in await check_backends()}

    assert {name: (s.version, s.sandbox) for name, s in statuses.items()} == {
        "mcp": ("codex-cli 0.147.0", "works"),
        "app-server": ("codex-cli 0.163.0", "works"),
    }
    app_server = statuses["app-server"].executable
    assert app_server is not None and "codex_cli_bin" in app_server


async def test_a_missing_codex_is_reported_for_each_backend() -> None:
    config = CodexServerConfig.model_validate(
        {"provider": {"base_url": "http://127.0.0.1:9/v1"}, "codex_command": "/nonexistent/codex"}
    )
    statuses = await check_backends(config)

    assert [(s.backend, s.ok, s.version) for s in statuses] == [
        ("mcp", False, None),
        ("app-server", False, None),
    ]
    assert all(s.sandbox.startswith("cannot start") for s in statuses)


def test_the_doctor_command_prints_both_backends() -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "orchestrator"), "doctor"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=80,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "mcp" in result.stdout and "app-server" in result.stdout
    assert "0.147.0" in result.stdout and "0.163.0" in result.stdout
