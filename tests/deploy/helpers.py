"""Talking to the served stack: the Prefect API client, waiting for runs, reading manifests."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import yaml
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.settings import PREFECT_API_URL, temporary_settings

from orchestrator.runstore import load_manifest
from orchestrator.settings import Settings
from orchestrator.workspace import Workspace
from schemas import RunManifest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
RUN_TIMEOUT = 120.0
OCCUPYING = {StateType.PENDING, StateType.RUNNING, StateType.CANCELLING}
"""The states of a flow run that hold a slot of its work pool."""


@contextmanager
def prefect_client(api_url: str) -> Iterator[SyncPrefectClient]:
    """A Prefect API client for ``api_url`` (this process's settings left as they were)."""
    with (
        temporary_settings(updates={PREFECT_API_URL: api_url}),
        get_client(sync_client=True) as client,
    ):
        yield client


def trigger(client: SyncPrefectClient, name: str, **parameters: Any) -> FlowRun:
    """Create a flow run of deployment ``flow/deployment`` with ``parameters``."""
    deployment = client.read_deployment_by_name(name)
    return client.create_flow_run_from_deployment(deployment.id, parameters=parameters)


def wait_final(
    client: SyncPrefectClient, flow_run_id: UUID, *, timeout: float = RUN_TIMEOUT
) -> FlowRun:
    """Poll until the flow run is in a final state (bounded by ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        run = client.read_flow_run(flow_run_id)
        if run.state is not None and run.state.is_final():
            return run
        if time.monotonic() > deadline:
            state = run.state.name if run.state else "no state"
            raise TimeoutError(f"flow run {run.name} still {state} after {timeout:.0f} s")
        time.sleep(0.5)


def manifests(home: Path) -> list[tuple[Path, RunManifest]]:
    """Every run under ``home``: manifest path and the validated manifest."""
    store = Workspace.open(Settings(home=home)).store
    return [(ref.manifest_path, load_manifest(ref.manifest_path)) for ref in store.list_runs()]


def manifest_of(home: Path, flow_run_id: UUID) -> tuple[Path, RunManifest]:
    """The run whose manifest names ``flow_run_id``."""
    found = [(p, m) for p, m in manifests(home) if m.flow_run_id == str(flow_run_id)]
    assert len(found) == 1, f"{len(found)} manifests name flow run {flow_run_id}"
    return found[0]


def cheapest_task(path: Path) -> Path:
    """The sample task of fewest agent calls, written to ``path``: rename-word-count with its
    one subtask done by the builder (no library codemod), so build, test and review."""
    spec = yaml.safe_load((EXAMPLES / "tasks" / "rename-word-count.yaml").read_text())
    spec["subtasks"] = [{**spec["subtasks"][0], "codemods": []}]
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def approval_task(folder: Path) -> Path:
    """The first sample task, with its plan approved by a person."""
    spec = yaml.safe_load((EXAMPLES / "tasks" / "add-text-helpers.yaml").read_text())
    spec["approvals"] = {"plan": "required", "handover": "auto"}
    path = folder / "add-text-helpers.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@dataclass(frozen=True)
class Occupancy:
    """When a flow run held a slot of the pool (Pending to its end), from its state history,
    and the names of its states before that."""

    start: datetime
    end: datetime
    waited_as: frozenset[str]

    @classmethod
    def of(cls, client: SyncPrefectClient, flow_run_id: UUID) -> Occupancy:
        states = sorted(client.read_flow_run_states(flow_run_id), key=lambda s: s.timestamp)
        holding = [s.timestamp for s in states if s.type in OCCUPYING]
        final = [s.timestamp for s in states if s.is_final()]
        assert holding and final, [s.type for s in states]
        before = frozenset(s.name or "" for s in states if s.timestamp < holding[0])
        return cls(start=holding[0], end=final[-1], waited_as=before)


def max_overlap(histories: list[Occupancy]) -> int:
    """The most runs holding a slot at one time."""
    events = sorted([(h.start, 1) for h in histories] + [(h.end, -1) for h in histories])
    held = peak = 0
    for _, change in events:
        held += change
        peak = max(peak, held)
    return peak
