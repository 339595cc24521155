from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest

from orchestrator.exceptions import (
    InvalidInputError,
    ManifestCorruptError,
    RunNotFoundError,
    StorageError,
    UnsafeIdError,
)
from orchestrator.runstore import load_manifest, sha256_bytes
from orchestrator.settings import Settings
from orchestrator.workspace import Workspace
from schemas import ErrorRecord, RunStatus, schema_errors, utc_now
from tests.conftest import sample_manifest


def test_create_writes_a_valid_manifest_and_one_audit_line(workspace: Workspace) -> None:
    manifest = sample_manifest()
    ref = workspace.store.create(manifest)

    assert ref.manifest_path == workspace.store.root / manifest.task_id / manifest.run_id / (
        "manifest.json"
    )
    data = json.loads(ref.manifest_path.read_text())
    assert schema_errors("run-manifest", data) is None
    assert data["run_id"] == manifest.run_id
    events = list(workspace.audit.read())
    assert [e.event for e in events] == ["manifest.created"]
    assert events[0].run_id == manifest.run_id


def test_update_changes_the_file_and_records_what_changed(workspace: Workspace) -> None:
    manifest = sample_manifest()
    workspace.store.create(manifest)

    def finish(m):  # type: ignore[no-untyped-def]
        m.status = RunStatus.SUCCEEDED

    updated = workspace.store.update(manifest.task_id, manifest.run_id, finish, actor="tester")

    assert updated.status is RunStatus.SUCCEEDED
    assert workspace.store.read(manifest.task_id, manifest.run_id).status is RunStatus.SUCCEEDED
    last = list(workspace.audit.read())[-1]
    assert last.event == "manifest.updated"
    assert last.actor == "tester"
    assert last.detail["changed"] == ["status"]


def test_create_refuses_to_overwrite_a_run(workspace: Workspace) -> None:
    manifest = sample_manifest()
    ref = workspace.store.create(manifest)
    before = ref.manifest_path.read_bytes()

    with pytest.raises(InvalidInputError, match="already exists"):
        workspace.store.create(manifest)
    assert ref.manifest_path.read_bytes() == before


def test_artifact_is_written_with_its_hash_and_size(workspace: Workspace) -> None:
    manifest = sample_manifest()
    ref = workspace.store.create(manifest)

    record = workspace.store.write_artifact(
        manifest.task_id, manifest.run_id, "plan/plan.json", '{"a": 1}', kind="plan"
    )

    path = ref.path / "plan" / "plan.json"
    assert path.read_bytes() == b'{"a": 1}'
    assert record.sha256 == sha256_bytes(b'{"a": 1}')
    assert record.size == 8
    stored = workspace.store.read(manifest.task_id, manifest.run_id)
    assert stored.artifact("plan/plan.json") == record
    assert workspace.store.artifact_intact(manifest.task_id, manifest.run_id, record)
    path.write_text("tampered")
    assert not workspace.store.artifact_intact(manifest.task_id, manifest.run_id, record)


@pytest.mark.parametrize("task_id", ["../../etc", "/tmp/x", "a/b", "..", ".hidden", "", "x" * 65])
def test_unsafe_task_ids_are_refused_and_nothing_is_created(
    workspace: Workspace, task_id: str
) -> None:
    with pytest.raises(UnsafeIdError):
        workspace.store.ref(task_id, "run-1")
    with pytest.raises(InvalidInputError):
        workspace.store.find(f"{task_id}/run-1")
    assert not workspace.store.root.exists()


@pytest.mark.parametrize("name", ["../escape", "/etc/passwd", "a/../../b", "manifest.json"])
def test_unsafe_artifact_names_are_refused(workspace: Workspace, name: str) -> None:
    manifest = sample_manifest()
    ref = workspace.store.create(manifest)
    before = sorted(p.name for p in ref.path.iterdir())

    with pytest.raises(InvalidInputError):
        workspace.store.write_artifact(manifest.task_id, manifest.run_id, name, "x")
    assert sorted(p.name for p in ref.path.iterdir()) == before


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("{not json", "not valid JSON"),
        ('{"schema_version": 1}', "does not match its schema"),
        ("[]", "does not match its schema"),
    ],
)
def test_corrupt_manifest_gives_a_clear_error_and_is_left_untouched(
    workspace: Workspace, content: str, reason: str
) -> None:
    manifest = sample_manifest()
    ref = workspace.store.create(manifest)
    ref.manifest_path.write_text(content)

    with pytest.raises(ManifestCorruptError, match=reason) as caught:
        workspace.store.read(manifest.task_id, manifest.run_id)
    assert str(ref.manifest_path) in str(caught.value)
    with pytest.raises(ManifestCorruptError):
        workspace.store.update(manifest.task_id, manifest.run_id, lambda m: None)
    assert ref.manifest_path.read_text() == content


def test_find_by_run_id_and_by_task_slash_run(workspace: Workspace) -> None:
    first = sample_manifest("task-a", "20261124T100000Z-aaaaaa")
    second = sample_manifest("task-b", "20261124T100001Z-bbbbbb")
    workspace.store.create(first)
    workspace.store.create(second)

    assert workspace.store.find(first.run_id).task_id == "task-a"
    assert workspace.store.find(f"task-b/{second.run_id}").run_id == second.run_id
    assert [r.task_id for r in workspace.store.list_runs()] == ["task-a", "task-b"]
    with pytest.raises(RunNotFoundError):
        workspace.store.find("20990101T000000Z-ffffff")


def test_secret_registered_before_a_write_never_reaches_the_manifest(workspace: Workspace) -> None:
    workspace.redactor.register("hunter2-canary-value")
    manifest = sample_manifest()
    ref = workspace.store.create(manifest)

    def add_error(m):  # type: ignore[no-untyped-def]
        m.errors.append(
            ErrorRecord(at=utc_now(), type="X", message="token hunter2-canary-value leaked")
        )

    workspace.store.update(manifest.task_id, manifest.run_id, add_error)

    assert "hunter2-canary-value" not in ref.manifest_path.read_text()
    assert load_manifest(ref.manifest_path).errors[0].message == "token *** leaked"


def test_reading_never_writes(workspace: Workspace, tmp_path: Path) -> None:
    manifest = sample_manifest()
    ref = workspace.store.create(manifest)
    mtime = ref.manifest_path.stat().st_mtime_ns

    workspace.store.read(manifest.task_id, manifest.run_id)
    list(workspace.store.list_runs())

    assert ref.manifest_path.stat().st_mtime_ns == mtime


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_an_unwritable_audit_log_refuses_the_run_and_leaves_nothing(workspace: Workspace) -> None:
    (workspace.settings.out_dir / "audit.log").mkdir(parents=True)
    before = _listing(workspace.settings.home)

    with pytest.raises(StorageError, match=r"cannot write the audit log .* a folder stands"):
        workspace.store.create(sample_manifest())
    assert _listing(workspace.settings.home) == before


def test_a_full_disk_while_creating_leaves_no_run_folder(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(path: Path, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr("orchestrator.runstore.atomic_write", full)
    manifest = sample_manifest()

    with pytest.raises(StorageError, match="the disk is full") as caught:
        workspace.store.create(manifest)
    assert caught.value.errno_name == "ENOSPC"
    assert list(workspace.store.root.glob("*/*")) == []  # no empty or staging run folder
    assert workspace.store.list_runs() == []


def test_a_full_disk_on_update_is_one_clear_error_and_keeps_the_old_manifest(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = sample_manifest()
    ref = workspace.store.create(manifest)
    before = ref.manifest_path.read_bytes()

    def full(path: Path, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr("orchestrator.runstore.atomic_write", full)
    with pytest.raises(StorageError, match=r"cannot write the manifest .*: the disk is full"):
        workspace.store.update(manifest.task_id, manifest.run_id, lambda m: None)
    assert ref.manifest_path.read_bytes() == before


def test_a_symlinked_runs_folder_is_refused(tmp_path: Path) -> None:
    home, outside = tmp_path / "home", tmp_path / "outside"
    home.mkdir()
    outside.mkdir()
    (home / ".runs").symlink_to(outside)

    with pytest.raises(InvalidInputError, match=r"\.runs is a symbolic link"):
        Workspace.open(Settings(home=home))
    assert list(outside.iterdir()) == []
