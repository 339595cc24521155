"""The dev stack's parts that need no server: stopping by PID, refusing a second stack."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from devstack import (
    DevStack,
    read_stack,
    spawn_part,
    stack_processes,
    stop_stack,
)
from orchestrator.exceptions import DevStackError, ProcessError
from orchestrator.supervisor import still_running

STUBBORN = """
trap '' TERM
setsid sh -c "trap '' TERM; while :; do sleep 0.1; done" &
while :; do sleep 0.1; done
"""
"""Ignores SIGTERM, and starts a child in a session of its own that ignores it too
(like a Prefect worker and the flow runs it starts)."""


def spawn_stubborn(state_dir: Path) -> int:
    starting = spawn_part(
        "stubborn",
        ["/bin/sh", "-c", STUBBORN],
        state_dir=state_dir,
        env=dict(os.environ),
        ready=lambda _: "ready",
        timeout=5,
    )
    starting.wait()
    deadline = time.monotonic() + 5
    while len(stack_processes(state_dir)) < 3:  # sh, the setsid child, their sleeps
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return starting.record.pid


def test_stop_kills_what_ignores_sigterm_and_children_in_new_sessions(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    pid = spawn_stubborn(state_dir)
    processes = stack_processes(state_dir)
    started = time.monotonic()
    stopped = stop_stack(state_dir, timeout=1.0)
    assert time.monotonic() - started < 5
    assert [s.pid for s in stopped] == [pid]
    assert still_running(processes) == []
    assert read_stack(state_dir).services == []
    assert stop_stack(state_dir) == []
    assert stop_stack(tmp_path / "never-used") == []


def test_a_running_stack_is_not_started_twice(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    spawn_stubborn(state_dir)
    try:
        with pytest.raises(DevStackError, match="still runs"):
            DevStack(state_dir=state_dir, home=tmp_path / "home").start()
    finally:
        stop_stack(state_dir, timeout=1.0)


def test_a_process_that_dies_early_is_reported_with_its_log(tmp_path: Path) -> None:
    starting = spawn_part(
        "broken",
        [sys.executable, "-c", "print('no such thing'); raise SystemExit(3)"],
        state_dir=tmp_path,
        env=dict(os.environ),
        ready=lambda _: None,
        timeout=10,
    )
    with pytest.raises(ProcessError, match=r"broken exited with code 3(.|\n)*no such thing"):
        starting.wait()
