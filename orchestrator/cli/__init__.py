"""The ``orchestrator`` command line.

The one module allowed to import every layer. Heavy imports (Prefect, the flows)
happen inside the commands that need them, so ``orchestrator --help`` stays fast.

Exit codes: 0 ok, 2 bad input (nothing changed), 1 failure.
"""

from __future__ import annotations

from ._app import app, main

__all__ = ["app", "main"]
