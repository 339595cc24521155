"""What a fork server's child runs in the fork server tests (instead of prefect.engine).

``python -m flows.forkrun REPORT MODE [ARG]``: the child writes a JSON report of what it
took over from its client to REPORT, prints a line on stdout and one on stderr, then by
MODE: ``exit CODE``; ``kill`` (SIGKILL itself); ``wait`` (till SIGTERM, then writes
REPORT.term and exits 3).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType


def _on_term(report: Path) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        report.with_suffix(".term").write_text("SIGTERM", encoding="utf-8")
        raise SystemExit(3)

    signal.signal(signal.SIGTERM, handler)


def main(argv: list[str]) -> None:
    report, mode, *rest = argv
    _on_term(Path(report))
    umask = os.umask(0)
    os.umask(umask)
    facts = {
        "argv": argv,
        "cwd": os.getcwd(),
        "env": os.environ.get("FORKCHILD_VALUE"),
        "umask": umask,
        "pid": os.getpid(),
        "pgid": os.getpgid(0),
    }
    Path(report).write_text(json.dumps(facts), encoding="utf-8")
    print("child stdout", flush=True)
    print("child stderr", file=sys.stderr, flush=True)
    if mode == "exit":
        raise SystemExit(int(rest[0]))
    if mode == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        time.sleep(0.1)


if __name__ == "__main__":
    main(sys.argv[1:])
