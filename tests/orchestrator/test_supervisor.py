"""The process supervisor: clean environments, ready checks, stopping by PID and start time."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.exceptions import ProcessError
from orchestrator.supervisor import (
    ProcessRef,
    clean_environ,
    ready_line,
    snapshot,
    spawn,
    still_running,
    terminate,
)

STUBBORN = """
trap '' TERM
setsid sh -c "trap '' TERM; while :; do sleep 0.1; done" &
echo ready
while :; do sleep 0.1; done
"""
"""Ignores SIGTERM and starts a child in a session of its own that ignores it too."""


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_a_child_gets_only_harmless_variables_and_what_it_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VAULT_TOKEN", "must-not-leak")
    monkeypatch.setenv("PREFECT_API_URL", "http://elsewhere")
    env = clean_environ({"GIVEN": "yes"})
    code = "import os, json; print(json.dumps(dict(os.environ)), flush=True)"
    with spawn("env", python(code), log=tmp_path / "env.log", env=env) as process:
        assert process.wait(30) == 0
    seen = (tmp_path / "env.log").read_text()
    assert '"GIVEN": "yes"' in seen
    assert "must-not-leak" not in seen and "PREFECT_API_URL" not in seen
    assert env["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)


def test_ready_line_reads_only_what_the_process_wrote_since_its_start(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text("listening on http://old\n")  # a previous run's line
    code = "import time; print('listening on http://new', flush=True); time.sleep(60)"
    with spawn("server", python(code), log=log, env=clean_environ()) as process:
        assert process.wait_ready(ready_line(r"listening on (\S+)"), timeout=30) == "http://new"
        assert process.running
    assert not process.running


def test_a_process_that_exits_is_reported_with_its_exit_code_and_log(tmp_path: Path) -> None:
    code = "print('config missing'); raise SystemExit(3)"
    process = spawn("broken", python(code), log=tmp_path / "b.log", env=clean_environ())
    with pytest.raises(ProcessError, match=r"broken exited with code 3(.|\n)*config missing") as e:
        process.wait_ready(ready_line("never"), timeout=30)
    assert (e.value.name, e.value.exit_code) == ("broken", 3)


def test_a_process_not_ready_in_time_is_stopped(tmp_path: Path) -> None:
    process = spawn("slow", ["sleep", "60"], log=tmp_path / "s.log", env=clean_environ())
    with pytest.raises(ProcessError, match="slow was not ready within 1 s"):
        process.wait_ready(lambda _: None, timeout=1)
    assert not process.ref.running


def test_a_line_filter_keeps_secret_lines_out_of_the_log(tmp_path: Path) -> None:
    code = "print('Root Token: s3cret'); print('token s3cret in a line'); print('plain')"
    process = spawn(
        "banner",
        python(code),
        log=tmp_path / "banner.log",
        env=clean_environ(),
        line_filter=lambda line: (
            None if line.startswith(b"Root Token:") else line.replace(b"s3cret", b"***")
        ),
    )
    assert process.wait(30) == 0
    process.stop()  # also waits for the filter to copy the last line
    assert (tmp_path / "banner.log").read_text() == "token *** in a line\nplain\n"


def test_stop_kills_what_ignores_sigterm_and_children_in_new_sessions(tmp_path: Path) -> None:
    process = spawn(
        "stubborn", ["/bin/sh", "-c", STUBBORN], log=tmp_path / "x.log", env=clean_environ()
    )
    process.wait_ready(ready_line("ready"), timeout=30)
    deadline = time.monotonic() + 10
    while len(tree := snapshot([process.pid])) < 3:  # sh, its setsid child, their sleeps
        assert time.monotonic() < deadline
        time.sleep(0.05)
    started = time.monotonic()
    process.stop(timeout=1.0)
    assert time.monotonic() - started < 5
    assert still_running(tree) == []
    assert process.poll() == -signal.SIGKILL


def test_an_owned_process_dies_with_its_owner_even_by_sigkill(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; "
        "from orchestrator.supervisor import clean_environ, spawn; "
        "p = spawn('sleeper', ['sleep', '60'], log=Path(sys.argv[1]), env=clean_environ()); "
        "print(p.pid, flush=True); sys.stdin.read()"
    )
    owner = subprocess.Popen(
        [*python(code), str(tmp_path / "sleeper.log")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert owner.stdout is not None
    child = ProcessRef.of(int(owner.stdout.readline()))
    assert child.running
    owner.kill()
    owner.communicate(timeout=10)
    deadline = time.monotonic() + 10
    while child.running:
        assert time.monotonic() < deadline, "the child outlived its owner"
        time.sleep(0.05)


def test_a_detached_process_is_not_our_concern_until_stopped_by_its_ref(tmp_path: Path) -> None:
    process = spawn(
        "detached", ["sleep", "60"], log=tmp_path / "d.log", env=clean_environ(), detached=True
    )
    ref = process.ref
    assert ref.running and os.getsid(ref.pid) == ref.pid  # a session of its own
    terminate({ref.pid: ref.start_ticks}, timeout=5)
    assert not ref.running
    assert process.poll() == -signal.SIGTERM


def test_a_recycled_pid_is_never_signalled() -> None:
    me = ProcessRef.of(os.getpid())
    stranger = {me.pid: me.start_ticks + 1}  # this pid, another start time: not ours
    terminate(stranger, timeout=0.1, kill_timeout=0.1)
    assert me.running
    assert still_running(stranger) == []
