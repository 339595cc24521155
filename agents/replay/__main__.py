"""``python -m agents.replay``: serve a fixture set on a loopback port until SIGTERM/SIGINT.

Prints ``replay provider listening on <url>`` (the codex ``base_url``) once it serves.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from ._app import FAULT_KINDS
from ._fixtures import FixtureError
from ._server import LOOPBACK, ReplayServer


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        server = ReplayServer(
            args.fixtures,
            host=args.host,
            port=args.port,
            request_log=args.request_log,
            latency=args.latency,
            faults=list(args.fault or []),
        )
    except FixtureError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with server:
        print(f"replay provider listening on {server.url}", flush=True)
        stop.wait()
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m agents.replay",
        description="Serve scripted model turns (the Responses API subset codex uses).",
    )
    parser.add_argument("--fixtures", type=Path, required=True, help="Fixture set folder.")
    parser.add_argument("--host", default=LOOPBACK, help="Interface (default: 127.0.0.1).")
    parser.add_argument("--port", type=int, default=0, help="Port; 0 picks a free one.")
    parser.add_argument("--request-log", type=Path, help="Append one JSON line per request.")
    parser.add_argument("--latency", type=float, default=0.0, help="Seconds before each answer.")
    parser.add_argument(
        "--fault",
        action="append",
        choices=FAULT_KINDS,
        help="Fail the next request this way (repeatable, in order).",
    )
    return parser


if __name__ == "__main__":
    sys.exit(main())
