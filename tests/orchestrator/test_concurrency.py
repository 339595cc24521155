"""Many processes updating one manifest: nothing lost, nothing torn."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from orchestrator.audit import AuditLog
from orchestrator.runstore import RunStore
from orchestrator.settings import Settings
from orchestrator.workspace import Workspace
from tests.conftest import sample_manifest
from tests.orchestrator import _workers

WRITERS, RECORDS_EACH = 20, 50


def test_twenty_processes_lose_no_update_and_never_tear_the_file(tmp_path: Path) -> None:
    home = tmp_path / "home"
    settings = Settings(home=home)
    manifest = sample_manifest()
    # Created with a separate audit log, so the shared one holds only the workers' lines.
    RunStore(settings.runs_dir, audit=AuditLog(tmp_path / "setup-out")).create(manifest)
    manifest_path = settings.runs_dir / manifest.task_id / manifest.run_id / "manifest.json"
    stop_file = tmp_path / "stop"

    context = multiprocessing.get_context("spawn")
    with context.Pool(WRITERS + 1) as pool:
        watcher = pool.apply_async(_workers.watch_manifest, (str(manifest_path), str(stop_file)))
        writers = [
            pool.apply_async(
                _workers.add_records,
                (str(home), manifest.task_id, manifest.run_id, worker, RECORDS_EACH),
            )
            for worker in range(WRITERS)
        ]
        written = sum(w.get(timeout=240) for w in writers)
        stop_file.touch()
        reads = watcher.get(timeout=30)

    assert written == WRITERS * RECORDS_EACH
    assert reads > 0
    workspace = Workspace.open(settings)
    final = workspace.store.read(manifest.task_id, manifest.run_id)
    names = {a.name for a in final.artifacts}
    expected = {f"w{w:02d}-r{i:02d}.txt" for w in range(WRITERS) for i in range(RECORDS_EACH)}
    assert names == expected
    assert len(final.artifacts) == WRITERS * RECORDS_EACH
    lines = workspace.audit.path.read_text().splitlines()
    assert len(lines) == WRITERS * RECORDS_EACH
    events = list(workspace.audit.read())  # each line parses and validates
    assert {(e.detail["worker"], e.detail["index"]) for e in events} == {
        (w, i) for w in range(WRITERS) for i in range(RECORDS_EACH)
    }
