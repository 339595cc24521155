"""codex never outlives an orchestrator process that was killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devstack.replay import ReplayServer
from schemas import AgentBackend

pytestmark = pytest.mark.integration

CHILD = """
import anyio, sys
from pathlib import Path
from devstack.replay import replay_config
from agents.backend import new_session

async def main():
    async with new_session(replay_config(sys.argv[1], backend=sys.argv[3])) as session:
        print(session.pid, flush=True)
        marker = '<orchestrator-call role="planner" task="add-text-helpers" />'
        await session.start(marker + " Plan it.", cwd=Path(sys.argv[2]))

anyio.run(main)
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is dead


def test_codex_dies_with_a_sigkilled_parent(tmp_path: Path, backend: AgentBackend) -> None:
    fixtures = Path(__file__).resolve().parents[2] / "examples" / "replay" / "sample"
    with ReplayServer(fixtures, latency=30.0) as replay:  # the turn hangs on the model
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, replay.url, str(tmp_path), backend],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[2],
        )
        assert child.stdout is not None
        codex_pid = int(child.stdout.readline())
        deadline = time.monotonic() + 20
        while not replay.requests():  # the call is under way
            assert time.monotonic() < deadline
            time.sleep(0.05)

        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
        child.stdout.close()

        deadline = time.monotonic() + 5
        while alive(codex_pid):
            assert time.monotonic() < deadline, f"codex {codex_pid} outlived its killed parent"
            time.sleep(0.05)
