"""Functions run in separate processes by the concurrency tests (importable under spawn)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from orchestrator.settings import Settings
from orchestrator.workspace import Workspace
from schemas import ArtifactRecord, RunManifest, schema_errors, utc_now


def add_records(home: str, task_id: str, run_id: str, worker: int, count: int) -> int:
    """Add ``count`` distinct artifact records, one update each; check the file after each."""
    workspace = Workspace.open(Settings(home=Path(home)))
    manifest_path = workspace.store.ref(task_id, run_id).manifest_path
    for index in range(count):
        record = ArtifactRecord(
            name=f"w{worker:02d}-r{index:02d}.txt",
            sha256="a" * 64,
            size=index,
            created_at=utc_now(),
        )

        def add(manifest: RunManifest, record: ArtifactRecord = record) -> None:
            manifest.artifacts.append(record)

        workspace.store.update(task_id, run_id, add, worker=worker, index=index)
        assert schema_errors("run-manifest", json.loads(manifest_path.read_bytes())) is None
    return count


def watch_manifest(path: str, stop_file: str) -> int:
    """Read and validate the manifest until ``stop_file`` exists; returns the reads made."""
    reads = 0
    while not Path(stop_file).exists():
        data = json.loads(Path(path).read_bytes())
        error = schema_errors("run-manifest", data)
        assert error is None, error
        reads += 1
        time.sleep(0.005)
    return reads
