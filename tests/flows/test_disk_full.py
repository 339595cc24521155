"""``orchestrator run`` with ORCHESTRATOR_HOME on a full disk: a 2 MB tmpfs, empty or with
about 120 KB left. One clear error naming the full disk, exit 1, no traceback, nothing
half-written: no run folder without a manifest, no manifest left ``running``."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.runs_api import idempotency_key
from orchestrator.runstore import MANIFEST_NAME, load_manifest
from orchestrator.settings import Settings
from orchestrator.sync import ledger_for
from orchestrator.workspace import Workspace
from schemas import RunStatus, SyncState
from tests.conftest import PrefectApi

from .conftest import ORCHESTRATOR, Stack, cli_env

pytestmark = pytest.mark.integration

TMPFS_BYTES = 2 * 1024 * 1024


@pytest.fixture
def tmpfs_home(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs mounted for this test (root only), unmounted at teardown."""
    mount_point = tmp_path / "tmpfs-home"
    mount_point.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_BYTES}", "tmpfs", str(mount_point)],
        check=True,
        capture_output=True,
    )
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=True, capture_output=True)


def _fill(folder: Path, *, leave: int) -> None:
    """Fill the file system of ``folder`` until about ``leave`` bytes are free."""
    stats = os.statvfs(folder)
    free = stats.f_bavail * stats.f_frsize
    (folder / "filler.bin").write_bytes(b"\0" * max(0, free - leave))


def _is_empty_folder(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) + ("/" if p.is_dir() else "") for p in root.rglob("*"))


def _run(stack: Stack, prefect_api: PrefectApi, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**cli_env(stack, prefect_api), "ORCHESTRATOR_HOME": str(home)}
    return subprocess.run(
        [ORCHESTRATOR, "run", str(stack.task("add-text-helpers.yaml")), "--repo", str(stack.repo)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _run_folders(home: Path) -> list[Path]:
    """Every ``.runs/<task>/<run>`` folder (not the ledger, not a hidden staging folder)."""
    return [
        run
        for task in sorted((home / ".runs").glob("*"))
        if task.is_dir() and not task.name.startswith(("_", "."))
        for run in sorted(task.iterdir())
        if run.is_dir() and not run.name.startswith(".")
    ]


def test_a_whole_run_fits_in_an_empty_2mb_home(
    stack: Stack, prefect_api: PrefectApi, tmpfs_home: Path
) -> None:
    """The 2 MB of the issue's report are enough today: the run succeeds and is complete."""
    assert _listing(tmpfs_home) == []
    result = _run(stack, prefect_api, tmpfs_home)
    assert result.returncode == 0, result.stdout + result.stderr
    (run_folder,) = _run_folders(tmpfs_home)
    manifest = load_manifest(run_folder / MANIFEST_NAME)
    assert manifest.status is RunStatus.SUCCEEDED
    assert manifest.sync is not None and manifest.sync.state is SyncState.SYNCED


@pytest.mark.parametrize("free_bytes", [120 * 1024, 4 * 1024], ids=["120kb-free", "4kb-free"])
def test_a_run_on_a_full_disk_is_one_clear_error(
    stack: Stack, prefect_api: PrefectApi, tmpfs_home: Path, free_bytes: int
) -> None:
    _fill(tmpfs_home, leave=free_bytes)
    before = _listing(tmpfs_home)
    assert before == ["filler.bin"]

    result = _run(stack, prefect_api, tmpfs_home)

    after = _listing(tmpfs_home)
    empty = [name for name in after if _is_empty_folder(tmpfs_home / name)]
    assert empty == [], f"empty folders left behind: {after}"
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output
    (failure,) = [line for line in output.splitlines() if line.startswith("failed: ")]
    assert "the disk is full" in failure, output
    for run_folder in _run_folders(tmpfs_home):  # none, or one that says why it failed
        assert (run_folder / MANIFEST_NAME).is_file(), f"{run_folder} has no manifest: {after}"
        manifest = load_manifest(run_folder / MANIFEST_NAME)
        assert manifest.status is RunStatus.FAILED, after
        assert manifest.status_reason and "the disk is full" in manifest.status_reason
        ledger = ledger_for(Workspace.open(Settings(home=tmpfs_home))).get(
            idempotency_key(manifest.task_id, manifest.run_id)
        )
        synced = [r is not None and r.state is SyncState.SYNCED for r in (ledger, manifest.sync)]
        assert synced[0] == synced[1], (ledger, manifest.sync)
    assert not [name for name in after if name.endswith(".tmp")], after
    print(f"{free_bytes} bytes free; before: {before}; after: {after}; {failure}")
