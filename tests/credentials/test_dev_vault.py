"""The dev server: no secret on a command line or in its files; stops by PID; detaches."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from devstack.vault import (
    LOG_FILE,
    DevVault,
    DevVaultState,
    read_state,
    secret_id_file,
    start_background,
    stop_background,
)
from orchestrator.credentials import CLOUD_TOKEN, VaultSettings, open_broker
from orchestrator.exceptions import CredentialError
from orchestrator.redaction import Redactor
from tests.helpers.canary import scan_cmdlines_for, scan_paths_for

pytestmark = pytest.mark.integration


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _all_secrets(vault: DevVault) -> list[str]:
    found = [vault.root_token.get_secret_value()]
    for env in vault.envs:
        found += [vault.approle(env).secret_id.get_secret_value(), *vault.values(env).values()]
    return found


def test_no_secret_on_any_command_line_or_in_the_server_files(vault: DevVault) -> None:
    for secret in _all_secrets(vault):
        assert scan_cmdlines_for(secret) == []
        assert scan_paths_for(secret, [vault.home]) == []
    log = (vault.home / LOG_FILE).read_text()
    assert "OpenBao server started" in log  # the banner is kept ...
    assert "Root Token" not in log  # ... without its two secret lines
    assert "Unseal Key" not in log


def test_stop_ends_the_process_and_removes_the_home() -> None:
    server = DevVault().start()
    pid, home = server.pid, server.home
    assert _alive(pid)

    server.stop()

    assert not _alive(pid)
    assert not home.exists()
    server.stop()  # idempotent


def test_the_server_dies_with_its_owner_even_by_sigkill(tmp_path: Path) -> None:
    script = (
        "import sys; from pathlib import Path; from devstack.vault import DevVault; "
        "v = DevVault(home=Path(sys.argv[1])).start(); print(v.address, flush=True); "
        "sys.stdin.read()"
    )
    owner = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path / "home")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert owner.stdout is not None
    port = int(owner.stdout.readline().decode().strip().rpartition(":")[2])
    assert _answers(port)

    owner.kill()
    owner.communicate(timeout=10)

    deadline = time.monotonic() + 10
    while _answers(port):
        assert time.monotonic() < deadline, "the dev server outlived its owner"
        time.sleep(0.05)


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def test_a_taken_port_is_a_clear_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]

        with pytest.raises(CredentialError) as caught:
            DevVault(port=port, startup_timeout=5).start()

    assert caught.value.cause == "down"
    assert "address already in use" in str(caught.value)


def test_given_values_are_written(redactor: Redactor) -> None:
    values = {"dev": {CLOUD_TOKEN: "given-cloud-token-1"}}

    with DevVault(values=values) as server:
        with open_broker(server.settings("dev"), "dev", redactor=redactor) as broker:
            assert broker.get(CLOUD_TOKEN) == "given-cloud-token-1"
            assert broker.keys == {CLOUD_TOKEN}
        server.write_values("dev", {CLOUD_TOKEN: "replaced-token-2"})
        with open_broker(server.settings("dev"), "dev", redactor=redactor) as broker:
            assert broker.get(CLOUD_TOKEN) == "replaced-token-2"


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "state"
    yield directory
    stop_background(directory)  # whatever a failing test left running


def test_background_server_outlives_its_starter_and_stops_by_pid(
    state_dir: Path, redactor: Redactor
) -> None:
    state = start_background(state_dir, envs=["dev", "prod"])

    assert _alive(state.pid) and _alive(state.server_pid)
    assert read_state(state_dir) == state
    assert (state_dir / "vault.pid").read_text() == f"{state.pid}\n"
    env_file = secret_id_file(state_dir, "dev")
    assert env_file.stat().st_mode & 0o777 == 0o600
    name, _, secret_id = env_file.read_text().strip().removeprefix("export ").partition("=")
    assert name == "ORCHESTRATOR_VAULT_SECRET_ID"
    assert scan_cmdlines_for(secret_id) == []
    assert scan_paths_for(secret_id, [state_dir]) == [f"{env_file}: utf-8"]

    settings = VaultSettings(address=state.address, role_id=SecretStr(state.role_ids["dev"]))
    environ = {name: secret_id}
    with open_broker(settings, "dev", redactor=redactor, environ=environ) as broker:
        assert len(broker.get(CLOUD_TOKEN)) > 20

    assert stop_background(state_dir)
    assert not _alive(state.pid) and not _alive(state.server_pid)
    assert sorted(p.name for p in state_dir.iterdir()) == ["dev-vault.log"]
    assert not stop_background(state_dir)


def test_background_refuses_a_second_server_in_the_same_folder(state_dir: Path) -> None:
    start_background(state_dir)

    with pytest.raises(CredentialError, match="already running"):
        start_background(state_dir)


def test_stop_never_signals_a_recycled_pid(state_dir: Path) -> None:
    state_dir.mkdir()
    me = os.getpid()
    stale = DevVaultState(
        pid=me,
        start_ticks=1,  # not this process's start time: the recorded process is gone
        server_pid=me,
        server_start_ticks=1,
        address="http://127.0.0.1:1",
        envs=("dev",),
        role_ids={},
    )
    (state_dir / "vault.json").write_text(stale.model_dump_json())

    assert not stop_background(state_dir)
    assert not (state_dir / "vault.json").exists()
