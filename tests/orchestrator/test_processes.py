from __future__ import annotations

import os
import subprocess
import sys
import time

from orchestrator.processes import (
    descendants,
    is_same_process,
    process_info,
    process_table,
    start_ticks,
)


def test_this_process_is_seen_with_its_parent_and_start_time() -> None:
    info = process_info(os.getpid())
    assert info is not None and info.alive
    assert info.parent == os.getppid()
    assert info.start_ticks == start_ticks(os.getpid()) > 0
    assert os.getpid() in process_table()


def test_a_tree_of_children_is_found_and_a_dead_process_is_not_the_same() -> None:
    # A child that starts a grandchild, then waits for it.
    script = "import subprocess, sys; subprocess.run([sys.executable, '-c', 'input()'])"
    child = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while not descendants(child.pid):
            assert time.monotonic() < deadline, "the child did not start its own child"
        (grandchild,) = descendants(child.pid)
        tree = descendants(os.getpid())  # the suite's servers are our children too
        assert {child.pid, grandchild} <= set(tree)
        assert process_info(grandchild).parent == child.pid  # type: ignore[union-attr]
        ticks = tree[child.pid]
        assert is_same_process(child.pid, ticks)
        assert not is_same_process(child.pid, ticks + 1)  # same pid, another start time
    finally:
        child.communicate(b"\n", timeout=10)
    assert not is_same_process(child.pid, ticks)
    assert process_info(2**22 + 7) is None
    assert start_ticks(2**22 + 7) == -1


def test_children_started_from_another_thread_are_found_as_the_table_finds_them() -> None:
    # Codex (tokio) forks from worker threads: the kernel lists such a child under the
    # thread that forked it, not under the process's main thread.
    script = (
        "import subprocess, sys, threading;"
        "t = threading.Thread(target=subprocess.run, args=([sys.executable, '-c', 'input()'],));"
        "t.start(); t.join()"
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while not descendants(child.pid):
            assert time.monotonic() < deadline, "the child did not start its own child"
        walked = descendants(child.pid)
        assert walked == descendants(child.pid, process_table())
        assert len(walked) == 1
    finally:
        child.communicate(b"\n", timeout=10)
    assert descendants(child.pid) == {}
