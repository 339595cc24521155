"""``python -m devstack.vault STATE_DIR``: run one dev Vault until SIGTERM (``make serve``).

Started detached by :func:`devstack.vault.start_background`, which waits for the line
``dev Vault ready at <address>``; see :mod:`devstack.vault._detached`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._detached import supervise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.vault")
    parser.add_argument("state_dir", type=Path)
    parser.add_argument("--env", action="append", dest="envs")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args(argv)
    return supervise(
        args.state_dir, envs=args.envs or ["dev"], port=args.port, timeout=args.timeout
    )


if __name__ == "__main__":
    sys.exit(main())
