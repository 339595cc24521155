"""``orchestrator dev vault``: what it prints, what it writes, and how it stops."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from devstack.vault import read_state
from orchestrator.credentials import CLOUD_TOKEN, VaultSettings, open_broker
from orchestrator.redaction import Redactor
from tests.helpers import foreground
from tests.helpers.canary import scan_cmdlines_for

pytestmark = pytest.mark.integration

# The dev group on an app of its own: the same commands `orchestrator dev ...` runs.
CLI = [
    sys.executable,
    "-c",
    "import typer; from orchestrator.cli import _dev; app = typer.Typer(); "
    "_dev.register(app); app()",
    "dev",
]


def _login_works(address: str, role_id: str, secret_id: str, redactor: Redactor) -> bool:
    settings = VaultSettings(address=address, role_id=SecretStr(role_id))
    environ = {"ORCHESTRATOR_VAULT_SECRET_ID": secret_id}
    with open_broker(settings, "dev", redactor=redactor, environ=environ) as broker:
        return bool(broker.get(CLOUD_TOKEN))


@pytest.mark.parametrize(
    ("signum", "sigint_ignored"),
    [(signal.SIGINT, False), (signal.SIGINT, True), (signal.SIGTERM, True)],
    ids=["ctrl-c", "ctrl-c-as-background-job", "sigterm-as-background-job"],
)
def test_foreground_prints_how_to_use_it_and_stops_on_ctrl_c(
    tmp_path: Path, redactor: Redactor, signum: signal.Signals, sigint_ignored: bool
) -> None:
    # Started as a background job of a script, SIGINT is ignored from the start: the
    # server must still stop on it (this is how it once hung on a fresh clone).
    process = foreground.start(
        [*CLI, "vault", "--state-dir", str(tmp_path)], sigint_ignored=sigint_ignored
    )
    try:
        output = foreground.read_until(process, "Press Ctrl-C", timeout=30)
        env_file = tmp_path / "approle-dev.env"
        secret_id = env_file.read_text().strip().partition("=")[2]
        address = re.search(r"at (http://127\.0\.0\.1:\d+) \(pid (\d+)", output)
        role_id = re.search(r"role_id ([0-9a-f-]{36})", output)
        assert address and role_id, output
        assert _login_works(address[1], role_id[1], secret_id, redactor)
        assert scan_cmdlines_for(secret_id) == []
        seconds, rest = foreground.stop_with(process, signum)
    finally:
        process.kill()  # a no-op after a clean exit
        process.communicate(timeout=10)  # also closes the pipe

    assert process.returncode == 0, rest
    assert seconds < foreground.STOP_WITHIN
    assert "stopping" in rest
    assert secret_id not in output + rest
    assert "VaultCredentials(address='http://127.0.0.1:" in output
    assert f". {env_file}" in output
    assert not env_file.exists()
    assert not Path(f"/proc/{address[2]}").exists()


def test_background_then_stop(tmp_path: Path, redactor: Redactor) -> None:
    state_dir = tmp_path / "serve"
    given = f"shared-cloud-token-{tmp_path.name}"
    env = {**os.environ, "ORCHESTRATOR_DEV_VAULT_CLOUD_TOKEN": given}

    started = subprocess.run(
        [*CLI, "vault", "--background", "--state-dir", str(state_dir), "--env", "prod"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    try:
        state = read_state(state_dir)
        assert state is not None, started.stdout + started.stderr
        secret_id = (state_dir / "approle-prod.env").read_text().strip().partition("=")[2]
        settings = VaultSettings(address=state.address, role_id=SecretStr(state.role_ids["prod"]))
        environ = {"ORCHESTRATOR_VAULT_SECRET_ID": secret_id}
        with open_broker(settings, "prod", redactor=redactor, environ=environ) as broker:
            assert broker.get(CLOUD_TOKEN) == given
    finally:
        stopped = subprocess.run(
            [*CLI, "vault-stop", "--state-dir", str(state_dir)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    assert started.returncode == 0, started.stderr
    assert "env prod: demo secrets at secret/codex/orchestrator/prod" in started.stdout
    assert f"orchestrator dev vault-stop --state-dir {state_dir}" in started.stdout
    assert given not in started.stdout + started.stderr
    assert (stopped.returncode, stopped.stdout.strip()) == (0, "dev Vault stopped")
    assert read_state(state_dir) is None


def test_background_needs_a_state_dir() -> None:
    result = subprocess.run(
        [*CLI, "vault", "--background"], capture_output=True, text=True, timeout=30, check=False
    )

    assert result.returncode != 0
    assert "--state-dir" in result.stderr
