"""``orchestrator demo`` (what ``make demo`` runs) on a fresh home: its own Prefect server."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.cli.conftest import ORCHESTRATOR

pytestmark = pytest.mark.integration


def test_demo_runs_the_sample_task_end_to_end_offline(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "ORCHESTRATOR_"))}
    env.update(ORCHESTRATOR_HOME=str(home), COLUMNS="200")  # no PREFECT_API_URL: its own server

    process = subprocess.Popen(
        [ORCHESTRATOR, "demo"],
        env=env,
        cwd=home,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output, summed_up = _read_all(process, until="next: ", timeout=300)
    # Once it has summed up it exits: nothing waits on the Prefect server it stopped.
    lingered = time.monotonic() - summed_up

    assert process.returncode == 0, output[-6000:]
    assert lingered < 20, f"the demo took {lingered:.0f} s to exit after its summary"
    assert "waiting for the Prefect server" in output
    manifests = list(home.glob(".runs/add-text-helpers/*/manifest.json"))
    assert len(manifests) == 1
    manifest = json.loads(manifests[0].read_text())
    assert manifest["status"] == "succeeded"
    assert manifest["sync"]["state"] == "synced"
    assert f"manifest: {manifests[0]}" in output
    assert "python -m pytest -q" in output  # what the agents ran, with exit codes
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


def _read_all(process: subprocess.Popen[str], *, until: str, timeout: float) -> tuple[str, float]:
    """Its whole output, and when the line starting with ``until`` came (fails past ``timeout``)."""
    assert process.stdout is not None
    timer = threading.Timer(timeout, process.kill)
    timer.start()
    lines, seen = [], time.monotonic()
    try:
        with process.stdout:
            for line in process.stdout:
                lines.append(line)
                if line.startswith(until):
                    seen = time.monotonic()
        process.wait()
    finally:
        timer.cancel()
    assert process.returncode != -9, "the demo ran past its timeout"
    return "".join(lines), seen
