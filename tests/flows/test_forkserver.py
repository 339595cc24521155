"""The fork server and its client, as real processes over a real Unix socket.

The server's children run ``tests/helpers/forkchild.py`` instead of ``prefect.engine``
(``--module``), which reports what it took over from its client; the last tests run the
client without a server, where it becomes ``prefect.engine`` itself.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from flows.forkrun import SOCKET_ENV
from flows.forkserver import READY
from tests.helpers.waiting import wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CHILD = "tests.helpers.forkchild"
TIMEOUT = 60


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    socket: Path
    log: Path

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    path = tmp_path / "forkserver" / "socket"
    log = tmp_path / "forkserver.log"
    command = [sys.executable, "-m", "flows.forkserver", "--socket", str(path)]
    command += ["--preload", CHILD, "--module", CHILD, "--grace", "5"]
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    started = Server(process, path, log)
    try:
        wait_for(lambda: READY in started.text() or None, TIMEOUT)
        yield started
    finally:
        process.kill()
        process.wait(timeout=TIMEOUT)


def client(
    socket_path: Path | None,
    *args: str,
    cwd: Path,
    python: str = sys.executable,
    **popen: object,
) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != SOCKET_ENV}
    env["FORKCHILD_VALUE"] = "from the client"
    env["PYTHONPATH"] = str(ROOT)  # for an interpreter of another environment
    if socket_path is not None:
        env[SOCKET_ENV] = str(socket_path)
    return subprocess.Popen(
        [python, "-m", "flows.forkrun", *args],
        cwd=cwd,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **popen,  # type: ignore[call-overload]
    )


def report(path: Path) -> dict[str, object]:
    """The child's report, once written."""

    def read() -> dict[str, object] | None:
        try:
            return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]
        except (FileNotFoundError, ValueError):
            return None

    return wait_for(read, TIMEOUT)


def gone(pid: int) -> bool | None:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return None


def test_a_child_takes_over_the_clients_environment_folder_arguments_and_streams(
    server: Server, tmp_path: Path
) -> None:
    out = tmp_path / "report.json"
    done = client(server.socket, str(out), "exit", "7", cwd=tmp_path, umask=0o027)
    stdout, stderr = done.communicate(timeout=TIMEOUT)
    assert done.returncode == 7
    assert stdout == "child stdout\n" and stderr == "child stderr\n"
    facts = report(out)
    assert facts["argv"] == [str(out), "exit", "7"]
    assert facts["cwd"] == str(tmp_path)
    assert facts["env"] == "from the client"
    assert facts["umask"] == 0o027
    assert facts["pid"] != done.pid and facts["pgid"] == facts["pid"]  # a session of its own
    assert f": pid {facts['pid']} ended (exit 7)" in server.text()


def test_a_child_killed_by_a_signal_ends_its_client_by_the_same_signal(
    server: Server, tmp_path: Path
) -> None:
    done = client(server.socket, str(tmp_path / "report.json"), "kill", cwd=tmp_path)
    done.communicate(timeout=TIMEOUT)
    assert done.returncode == -signal.SIGKILL


def test_sigterm_to_the_client_reaches_the_child(server: Server, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    running = client(server.socket, str(out), "wait", cwd=tmp_path)
    report(out)
    running.send_signal(signal.SIGTERM)
    running.communicate(timeout=TIMEOUT)
    assert running.returncode == 3  # the child's own SIGTERM handler chose it
    assert out.with_suffix(".term").read_text() == "SIGTERM"


def test_a_killed_client_takes_its_child_along(server: Server, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    running = client(server.socket, str(out), "wait", cwd=tmp_path)
    pid = int(report(out)["pid"])  # type: ignore[call-overload]
    running.kill()
    running.communicate(timeout=TIMEOUT)
    wait_for(lambda: gone(pid), TIMEOUT)
    assert f"its client is gone, pid {pid} killed" in server.text()


def test_a_stopping_server_terminates_its_children_and_removes_its_socket(
    server: Server, tmp_path: Path
) -> None:
    out = tmp_path / "report.json"
    running = client(server.socket, str(out), "wait", cwd=tmp_path)
    report(out)
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=TIMEOUT) == 0
    running.communicate(timeout=TIMEOUT)
    assert running.returncode == 3 and out.with_suffix(".term").exists()
    assert not server.socket.exists()


def test_a_second_server_on_the_same_socket_says_so_and_the_first_serves_on(
    server: Server, tmp_path: Path
) -> None:
    command = [sys.executable, "-m", "flows.forkserver", "--socket", str(server.socket)]
    second = subprocess.run(
        [*command, "--preload", "json"], capture_output=True, text=True, timeout=TIMEOUT
    )
    assert second.returncode == 2
    assert second.stderr.endswith(f"cannot listen on {server.socket}: Address already in use\n")
    out = tmp_path / "report.json"
    done = client(server.socket, str(out), "exit", "0", cwd=tmp_path)
    done.communicate(timeout=TIMEOUT)
    assert done.returncode == 0 and out.exists()


def test_the_socket_is_its_users_only_and_a_bad_request_changes_nothing(
    server: Server, tmp_path: Path
) -> None:
    assert stat.S_IMODE(server.socket.stat().st_mode) == 0o600
    assert stat.S_IMODE(server.socket.parent.stat().st_mode) == 0o700
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as raw:
        raw.connect(str(server.socket))
        raw.sendall(b"\0\0\0\x05hello")  # a length and a body, but no standard streams
        assert raw.recv(8) == b""  # dropped
    assert "refused a request: expected 3 standard streams, got 0" in server.text()
    out = tmp_path / "report.json"
    done = client(server.socket, str(out), "exit", "0", cwd=tmp_path)
    done.communicate(timeout=TIMEOUT)
    assert done.returncode == 0 and report(out)["argv"] == [str(out), "exit", "0"]


def test_a_client_of_another_python_environment_is_refused_and_runs_the_engine_itself(
    server: Server, tmp_path: Path
) -> None:
    """The server's children run the code it imported: a worker of another environment
    (another version of the project) must not get it."""
    other = str(Path(sys.base_prefix) / "bin" / "python3")
    done = client(
        server.socket, str(tmp_path / "report.json"), "exit", "0", cwd=tmp_path, python=other
    )
    _, stderr = done.communicate(timeout=TIMEOUT)
    assert f"fork server {server.socket} refused the flow run" in stderr
    assert "No module named 'prefect'" in stderr  # that environment's own engine ran
    assert f"refused, its client runs from {sys.base_prefix}" in server.text()
    assert not (tmp_path / "report.json").exists()


def test_without_a_server_the_client_is_prefect_engine_itself(tmp_path: Path) -> None:
    done = client(None, "not-a-flow-run-id", cwd=tmp_path)
    _, stderr = done.communicate(timeout=TIMEOUT)
    assert done.returncode == 1
    assert "Invalid flow run id" in stderr and "forkrun" not in stderr


def test_an_unreachable_server_is_said_and_the_engine_runs_here(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-socket"
    done = client(missing, "not-a-flow-run-id", cwd=tmp_path)
    _, stderr = done.communicate(timeout=TIMEOUT)
    assert done.returncode == 1
    assert f"fork server {missing} unreachable" in stderr
    assert "Invalid flow run id" in stderr
