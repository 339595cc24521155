"""``orchestrator demo`` (what ``make demo`` runs), in Prefect's ephemeral mode."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.cli.conftest import ORCHESTRATOR

pytestmark = pytest.mark.integration


def test_demo_runs_the_sample_task_end_to_end_offline(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "ORCHESTRATOR_"))}
    env.update(ORCHESTRATOR_HOME=str(home), COLUMNS="200")  # no PREFECT_API_URL: ephemeral

    result = subprocess.run(
        [ORCHESTRATOR, "demo"],
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    manifests = list(home.glob(".runs/add-text-helpers/*/manifest.json"))
    assert len(manifests) == 1
    manifest = json.loads(manifests[0].read_text())
    assert manifest["status"] == "succeeded"
    assert manifest["sync"]["state"] == "synced"
    assert f"manifest: {manifests[0]}" in result.stdout
    assert "python -m pytest -q" in result.stdout  # what the agents ran, with exit codes
    branch = manifest["result"]["branch"]
    repo = home / "work" / "sample-repo"
    shown = subprocess.run(
        ["git", "-C", str(repo), "diff", "--stat", f"main..{branch}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "textkit/slugify.py" in shown
    leftovers = subprocess.run(
        ["pgrep", "-f", str(home / "work" / "demo")], capture_output=True, text=True, check=False
    ).stdout
    assert leftovers == "", "the demo left servers running"
