"""Links into the Prefect UI that people land on.

Prefect 3.9's server serves two UIs: ``http://127.0.0.1:4200/`` redirects to the new
(V2) one under ``/v2/``, while older paths such as ``/runs/flow-run/<id>`` still open the
previous UI. A link we print (the approvals inbox, a decision, a notification) must
open the same UI a person lands on, with the same screens as the docs, so every link is
built here. Prefect Cloud has one UI and keeps its paths (no ``/v2``).
"""

from __future__ import annotations

import json
from urllib.parse import quote
from uuid import UUID

from prefect.settings import PREFECT_API_URL, PREFECT_CLOUD_API_URL, PREFECT_UI_URL

__all__ = ["PAUSED_RUNS_QUERY", "V2_SEGMENT", "flow_run_url", "paused_runs_url", "ui_base_url"]

V2_SEGMENT = "v2"
# The V2 runs page's own filter (its "State types" select set to Paused): every flow run
# waiting for a person at one of our gates is PAUSED. Subflows stay listed: a command
# gate pauses the phase subflow that makes the agent call, not the pipeline's run.
PAUSED_RUNS_QUERY = f"state-types={quote(json.dumps(['PAUSED'], separators=(',', ':')))}"


def ui_base_url() -> str | None:
    """Where the UI people land on lives (no trailing slash); None when no UI is known."""
    base = (PREFECT_UI_URL.value() or "").rstrip("/")
    if not base:
        return None
    return base if _on_cloud() else f"{base}/{V2_SEGMENT}"


def flow_run_url(flow_run_id: UUID | str) -> str | None:
    """The flow run's page (its ⋮ menu holds Resume while it is paused)."""
    base = ui_base_url()
    return f"{base}/runs/flow-run/{flow_run_id}" if base else None


def paused_runs_url() -> str | None:
    """The runs page filtered to paused runs: every run waiting for a decision.

    Prefect Cloud's runs page takes other filter parameters: there it is the runs page.
    """
    base = ui_base_url()
    if base is None:
        return None
    return f"{base}/runs" if _on_cloud() else f"{base}/runs?{PAUSED_RUNS_QUERY}"


def _on_cloud() -> bool:
    return (PREFECT_API_URL.value() or "").startswith(PREFECT_CLOUD_API_URL.value())
