"""Every foreground server stops within 5 s of Ctrl-C or SIGTERM, also as a background job.

``orchestrator dev vault`` is covered in tests/credentials/test_dev_cli.py.
"""

from __future__ import annotations

import os
import secrets
import signal
import sys
from pathlib import Path

import httpx
import pytest

from devstack.samples import fixture_set
from tests.cli.conftest import ORCHESTRATOR
from tests.helpers import foreground

pytestmark = pytest.mark.integration

SIGNALS = pytest.mark.parametrize(
    ("signum", "sigint_ignored"),
    [(signal.SIGINT, False), (signal.SIGINT, True), (signal.SIGTERM, True)],
    ids=["ctrl-c", "ctrl-c-as-background-job", "sigterm-as-background-job"],
)


@SIGNALS
def test_cloud_serve_stops_on_a_signal(
    tmp_path: Path, signum: signal.Signals, sigint_ignored: bool
) -> None:
    token = secrets.token_urlsafe(16)
    env = {**os.environ, "RUNS_API_TEST_TOKEN": token, "ORCHESTRATOR_HOME": str(tmp_path)}
    command = [ORCHESTRATOR, "cloud", "serve", "--port", "0", "--token-env", "RUNS_API_TEST_TOKEN"]
    process = foreground.start(command, sigint_ignored=sigint_ignored, env=env)
    try:
        output = foreground.read_until(process, "(database", timeout=60)
        url = output.split("Runs API listening on ", 1)[1].split()[0]
        headers = {"authorization": f"Bearer {token}"}
        runs = httpx.get(f"{url}/workspaces/w/runs", headers=headers, timeout=10)
        assert runs.json()["total"] == 0
        seconds, rest = foreground.stop_with(process, signum)
    finally:
        process.kill()
        process.communicate(timeout=10)

    assert (process.returncode, seconds < foreground.STOP_WITHIN) == (0, True), rest
    assert (tmp_path / "out" / "runs-api.sqlite3").is_file()
    assert token not in output + rest


@SIGNALS
def test_the_replay_provider_stops_on_a_signal(
    tmp_path: Path, signum: signal.Signals, sigint_ignored: bool
) -> None:
    command = [sys.executable, "-m", "devstack.replay", "--fixtures", str(fixture_set())]
    process = foreground.start(command, sigint_ignored=sigint_ignored)
    try:
        output = foreground.read_until(process, "/v1", timeout=60)
        url = output.split("listening on ", 1)[1].split()[0]
        assert httpx.get(url.removesuffix("/v1") + "/_replay/health", timeout=10).status_code == 200
        seconds, rest = foreground.stop_with(process, signum)
    finally:
        process.kill()
        process.communicate(timeout=10)

    assert (process.returncode, seconds < foreground.STOP_WITHIN) == (0, True), rest
