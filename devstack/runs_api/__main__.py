"""``python -m devstack.runs_api``: serve the reference Runs API until SIGINT/SIGTERM.

The token is read from an environment variable (``--token-env``), never from the
command line; ``Runs API listening on <url>`` is printed once it accepts connections.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from orchestrator.exceptions import InvalidInputError

from .._uvicorn import LOOPBACK
from ._faults import parse_faults
from ._guard import DEFAULT_MAX_BODY_BYTES
from ._server import DEFAULT_PORT, DEFAULT_TOKEN_ENV, READY_PREFIX, serve, token_from_env


def main(argv: list[str] | None = None) -> int:
    """Serve until terminated; 2 on bad input."""
    args = _parser().parse_args(argv)
    try:
        serve(
            port=args.port,
            db_path=args.db,
            token=token_from_env(args.token_env),
            host=args.host,
            faults=parse_faults(args.faults),
            access_log=not args.quiet,
            max_body_bytes=args.max_body_bytes,
            on_ready=lambda url: print(f"{READY_PREFIX}{url}", flush=True),
        )
    except InvalidInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.runs_api",
        description="The reference Codex Cloud Runs API (FastAPI + SQLite).",
    )
    parser.add_argument("--host", default=LOOPBACK, help="Address to listen on (loopback).")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port.")
    parser.add_argument("--db", type=Path, required=True, help="SQLite file of imported runs.")
    parser.add_argument("--token-env", default=DEFAULT_TOKEN_ENV, help="Env var with the token.")
    parser.add_argument("--faults", help="Fault plan as JSON, e.g. '{\"fail_next\": 2}'.")
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=DEFAULT_MAX_BODY_BYTES,
        help="Larger request bodies are answered 413 (default: %(default)s, 4 MiB).",
    )
    parser.add_argument("--quiet", action="store_true", help="No access log.")
    return parser


if __name__ == "__main__":
    sys.exit(main())
