"""How hard every process of ours retries the Prefect API before a run fails.

Prefect's own client (``prefect.client.base.PrefectHttpxAsyncClient``, also used by
``get_client()`` in our flows, gates and approvals) retries a request that gets 429,
502, 503 or 408, or fails to connect or read, waiting ``2 ** attempt`` seconds with
jitter between attempts. Its defaults (5 retries: 2 + 4 + 8 + 16 + 32 s, jitter 0.2) ran
out under 20 runs at once on SQLite, which answers colliding writes with 503 ("database
is locked"), and lost 4 runs of 20. :data:`PREFECT_CLIENT_RETRY_DEFAULTS` raises the
bound to 8 retries (about 8.5 minutes of waits in all) and spreads the retries of runs
that collided (jitter 0.5), and adds 504 (a gateway in front of a real server timing
out). A run that still cannot reach the API fails with that reason and can resume.

These are environment variables of Prefect's settings (``prefect.settings.models.client``
in 3.9.1), so this module imports nothing of Prefect. See docs/deployments.md, "Retries".
"""

from __future__ import annotations

import os
from collections.abc import Mapping

__all__ = ["PREFECT_CLIENT_PREFIX", "PREFECT_CLIENT_RETRY_DEFAULTS", "prefect_client_environ"]

PREFECT_CLIENT_PREFIX = "PREFECT_CLIENT_"
PREFECT_CLIENT_RETRY_DEFAULTS: Mapping[str, str] = {
    "PREFECT_CLIENT_MAX_RETRIES": "8",
    "PREFECT_CLIENT_RETRY_JITTER_FACTOR": "0.5",
    "PREFECT_CLIENT_RETRY_EXTRA_CODES": "504",
}


def prefect_client_environ(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """Our retry defaults, then every ``PREFECT_CLIENT_*`` variable ``environ`` sets.

    For the environment of a process that talks to the Prefect API (the worker, and so
    the flow runs it starts): what the user set wins over our defaults.
    """
    own = {k: v for k, v in environ.items() if k.startswith(PREFECT_CLIENT_PREFIX)}
    return {**PREFECT_CLIENT_RETRY_DEFAULTS, **own}
