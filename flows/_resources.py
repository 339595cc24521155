"""The Prefect resource ids our events are about (their subjects and related resources)."""

from __future__ import annotations


def run_resource_id(task_id: str, run_id: str) -> str:
    """The Prefect resource id of a run (the subject of its events)."""
    return f"orchestrator.run.{task_id}.{run_id}"


def gate_resource_id(task_id: str, run_id: str, approval_id: str) -> str:
    """The Prefect resource id of one gate of one run (the subject of its events)."""
    return f"orchestrator.gate.{task_id}.{run_id}.{approval_id}"
