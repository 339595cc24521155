"""What the dev servers print and read, shared by each server and whoever starts it.

Kept apart from the servers so that starting one (``orchestrator serve``) does not
import its web framework.
"""

from __future__ import annotations

import re

REPLAY_READY = "replay provider listening on "
RUNS_API_READY = "Runs API listening on "
VAULT_READY = "dev Vault ready at "
RUNS_API_TOKEN_ENV = "ORCHESTRATOR_CLOUD_TOKEN"
"""Where the reference Runs API server reads its token (the variable's name, not a value)."""


def ready_pattern(prefix: str) -> str:
    """The regular expression of a ready line; group 1 is the URL that follows ``prefix``."""
    return re.escape(prefix) + r"(http://\S+)"
