"""``python -m devstack.replay``: serve a fixture set on a loopback port until SIGTERM/SIGINT.

Prints ``replay provider listening on <url>`` (the codex ``base_url``) once it serves.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from orchestrator.exceptions import InvalidInputError

from .._foreground import stop_signals
from .._uvicorn import LOOPBACK
from .._wire import REPLAY_READY
from ._app import FAULT_KINDS
from ._server import ReplayServer


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    with stop_signals() as stop:
        try:
            server = ReplayServer(
                args.fixtures,
                host=args.host,
                port=args.port,
                request_log=args.request_log,
                latency=args.latency,
                faults=list(args.fault or []),
            )
            server.start()
        except InvalidInputError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        try:
            print(f"{REPLAY_READY}{server.url}", flush=True)
            stop.wait(alive=lambda: server.alive)
        finally:
            server.stop()
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.replay",
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
