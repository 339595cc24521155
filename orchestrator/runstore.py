"""The run store: one folder per run under ``.runs/<task-id>/<run-id>/``.

``manifest.json`` is validated (pydantic and the committed JSON Schema) and
redacted on every write and read, written atomically (temp file, fsync, rename)
under a file lock, and every change is one line in the audit log.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson
from filelock import FileLock, Timeout
from pydantic import BaseModel, ValidationError

from schemas import ArtifactRecord, RunManifest, check_safe_id, schema_errors, utc_now

from ._disk import disk_errors, make_folders
from .audit import AuditLog
from .exceptions import (
    InvalidInputError,
    LockTimeoutError,
    ManifestCorruptError,
    RunNotFoundError,
    UnsafeIdError,
)
from .redaction import Redactor, get_redactor

MANIFEST_NAME = "manifest.json"
MANIFEST_SCHEMA = "run-manifest"
LOCK_SUFFIX = ".lock"

Mutation = Callable[[RunManifest], None]
DocumentT = TypeVar("DocumentT", bound=BaseModel)


def new_run_id() -> str:
    """A run id: UTC timestamp plus a short random suffix, e.g. ``20261124T130758Z-3f9a1c``."""
    return f"{utc_now():%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def safe_id(value: str, *, what: str) -> str:
    """``value`` if it is a safe id, else :class:`UnsafeIdError` naming ``what``."""
    try:
        return check_safe_id(value)
    except ValueError as exc:
        raise UnsafeIdError(f"invalid {what}: {exc}", value=value) from None


@dataclass(frozen=True)
class RunRef:
    """Where one run lives."""

    task_id: str
    run_id: str
    path: Path

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST_NAME


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see the old or the new file, never a torn one."""
    commit_staged(stage_write(path, data), path)


def stage_write(path: Path, data: bytes) -> Path:
    """Write ``data`` to a hidden file beside ``path`` (flushed to disk); returns its path.

    :func:`commit_staged` puts it in place. The part that can fail for want of space
    happens here, so a caller can stage two files and then commit both.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        discard_staged(Path(tmp_name))
        raise
    return Path(tmp_name)


def commit_staged(staged: Path, path: Path) -> None:
    """Replace ``path`` with the file :func:`stage_write` wrote (a rename: needs no space)."""
    try:
        os.replace(staged, path)
    except BaseException:
        discard_staged(staged)
        raise
    _fsync_dir(path.parent)


def discard_staged(staged: Path) -> None:
    """Remove a staged file that will not be committed."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(staged)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def locked(path: Path, *, timeout: float) -> Iterator[None]:
    """Hold ``<path>.lock`` (a file lock other processes see too) for the block.

    Raises:
        LockTimeoutError: another holder kept it longer than ``timeout`` seconds.
    """
    try:
        with FileLock(str(path) + LOCK_SUFFIX, timeout=timeout):
            yield
    except Timeout as exc:
        raise LockTimeoutError(
            f"could not lock {path} within {timeout}s", path=str(path), timeout=timeout
        ) from exc


# What each document is called in messages.
_DOCUMENT_NAMES = {"run-manifest": "manifest", "sync-record": "sync record"}


def load_document(path: Path, model: type[DocumentT], *, schema: str) -> DocumentT:
    """Parse a JSON document and check it against its committed schema and its model.

    Raises:
        ManifestCorruptError: it does not parse or validate; the file is left untouched.
    """
    return validated_document(read_document_data(path, schema=schema), model, path, schema)


def read_document_data(path: Path, *, schema: str) -> dict[str, Any]:
    """A JSON document's data, checked against its committed schema.

    Raises:
        ManifestCorruptError: it does not parse or does not match the schema.
    """
    what = _DOCUMENT_NAMES[schema]
    try:
        data = json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestCorruptError(f"{what} is not valid JSON ({exc})", path=str(path)) from None
    error = schema_errors(schema, data)
    if error:
        raise ManifestCorruptError(f"{what} does not match its schema: {error}", path=str(path))
    assert isinstance(data, dict)  # every document schema has type: object
    return data


def validated_document(
    data: dict[str, Any], model: type[DocumentT], path: Path, schema: str
) -> DocumentT:
    """``data`` (already checked against its schema) as its model.

    Raises:
        ManifestCorruptError: the model refuses it.
    """
    what = _DOCUMENT_NAMES[schema]
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ManifestCorruptError(
            f"invalid {what}: {where}: {first['msg']}", path=str(path)
        ) from None


def write_document(
    path: Path, data: dict[str, Any], model: type[DocumentT], *, schema: str
) -> DocumentT:
    """Check ``data`` against its schema and model, then write it atomically.

    Raises:
        InvalidInputError: it does not validate (nothing is written).
    """
    text, written = _document_bytes(data, model, schema)
    atomic_write(path, text)
    return written


def stage_document(
    path: Path, data: dict[str, Any], model: type[DocumentT], *, schema: str
) -> tuple[Path, DocumentT]:
    """Check ``data`` as :func:`write_document` does and stage it (see :func:`stage_write`).

    Raises:
        InvalidInputError: it does not validate (nothing is written).
    """
    text, written = _document_bytes(data, model, schema)
    return stage_write(path, text), written


def _document_bytes(
    data: dict[str, Any], model: type[DocumentT], schema: str
) -> tuple[bytes, DocumentT]:
    error = schema_errors(schema, data)
    if error:
        raise InvalidInputError(f"refusing to write an invalid {_DOCUMENT_NAMES[schema]}: {error}")
    written = model.model_validate(data)
    # Byte for byte what json.dumps(indent=2, ensure_ascii=False) + "\n" writes, 40x faster.
    return orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE), written


class RunStore:
    """Creates, reads, updates and lists runs under ``root`` (usually ``.runs``)."""

    def __init__(
        self,
        root: Path,
        *,
        audit: AuditLog,
        redactor: Redactor | None = None,
        lock_timeout: float = 60.0,
    ) -> None:
        self.root = Path(root)
        self.audit = audit
        self._redactor = redactor
        self.lock_timeout = lock_timeout

    @property
    def redactor(self) -> Redactor:
        return self._redactor or get_redactor()

    # -- locating ------------------------------------------------------------------

    def ref(self, task_id: str, run_id: str) -> RunRef:
        """The folder of a run; ids are checked so no path can escape ``root``."""
        task_id = safe_id(task_id, what="task id")
        run_id = safe_id(run_id, what="run id")
        return RunRef(task_id, run_id, self.root / task_id / run_id)

    def find(self, run: str) -> RunRef:
        """Look a run up by ``<run-id>`` or ``<task-id>/<run-id>``."""
        if "/" in run:
            task_id, _, run_id = run.partition("/")
            ref = self.ref(task_id, run_id)
            if not ref.manifest_path.exists():
                raise RunNotFoundError(f"no run {run!r} under {self.root}", run_id=run)
            return ref
        run_id = safe_id(run, what="run id")
        matches = sorted(self.root.glob(f"*/{run_id}/{MANIFEST_NAME}"))
        if not matches:
            raise RunNotFoundError(f"no run {run_id!r} under {self.root}", run_id=run_id)
        if len(matches) > 1:
            tasks = ", ".join(m.parent.parent.name for m in matches)
            raise InvalidInputError(f"run id {run_id!r} is ambiguous (tasks: {tasks})")
        return self.ref(matches[0].parent.parent.name, run_id)

    def tasks_with_run(self, run_id: str) -> list[str]:
        """The tasks that have a run ``run_id`` (normally none or one)."""
        run_id = safe_id(run_id, what="run id")
        return sorted(m.parent.parent.name for m in self.root.glob(f"*/{run_id}/{MANIFEST_NAME}"))

    def list_runs(self) -> list[RunRef]:
        """Every run folder with a manifest, oldest run id first."""
        refs = [
            RunRef(p.parent.parent.name, p.parent.name, p.parent)
            for p in self.root.glob(f"*/*/{MANIFEST_NAME}")
            if not p.parent.name.startswith(".")  # a staging folder a killed create left
        ]
        return sorted(refs, key=lambda r: (r.run_id, r.task_id))

    # -- manifest ------------------------------------------------------------------

    def create(self, manifest: RunManifest, *, actor: str | None = None) -> RunRef:
        """Write the first manifest of a new run; refuses to overwrite an existing run.

        The run folder appears whole or not at all: the manifest is written in a staging
        folder that is renamed into place, and removed again if its audit line cannot be
        written.

        Raises:
            InvalidInputError: the run exists already.
            StorageError: the disk refused a write; nothing is left behind.
        """
        ref = self.ref(manifest.task_id, manifest.run_id)
        self.audit.check_writable()
        if ref.path.exists():
            raise InvalidInputError(f"run {ref.task_id}/{ref.run_id} already exists")
        with disk_errors("the run folder", ref.path):
            written = self._stage_and_rename(ref, manifest)
        try:
            self.audit.append(
                "manifest.created",
                task_id=ref.task_id,
                run_id=ref.run_id,
                actor=actor,
                status=written.status.value,
            )
        except BaseException:
            shutil.rmtree(ref.path, ignore_errors=True)
            raise
        return ref

    def _stage_and_rename(self, ref: RunRef, manifest: RunManifest) -> RunManifest:
        made = make_folders(ref.path.parent)
        try:
            return self._stage_in(ref, manifest)
        except BaseException:
            for folder in reversed(made):  # no empty task folder is left behind
                with contextlib.suppress(OSError):
                    folder.rmdir()
            raise

    def _stage_in(self, ref: RunRef, manifest: RunManifest) -> RunManifest:
        staging = Path(tempfile.mkdtemp(prefix=f".{ref.run_id}.", dir=ref.path.parent))
        try:
            written = write_document(
                staging / MANIFEST_NAME, self._data(manifest), RunManifest, schema=MANIFEST_SCHEMA
            )
            try:
                os.rename(staging, ref.path)  # fails if another process created it meanwhile
            except OSError as exc:
                if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                    raise InvalidInputError(
                        f"run {ref.task_id}/{ref.run_id} already exists"
                    ) from None
                raise
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        _fsync_dir(ref.path.parent)
        return written

    def read(self, task_id: str, run_id: str) -> RunManifest:
        """The manifest, validated; :class:`ManifestCorruptError` when it is not valid."""
        return load_manifest(self._existing(task_id, run_id).manifest_path)

    def update(
        self,
        task_id: str,
        run_id: str,
        mutate: Mutation,
        *,
        event: str = "manifest.updated",
        actor: str | None = None,
        **detail: Any,
    ) -> RunManifest:
        """Read, change and write the manifest under its lock; no concurrent update is lost.

        ``mutate`` changes the manifest in place. One audit line records the event,
        the fields that changed and ``detail``.
        """
        ref = self._existing(task_id, run_id)
        with self._locked(ref):
            before = read_document_data(ref.manifest_path, schema=MANIFEST_SCHEMA)
            manifest = validated_document(before, RunManifest, ref.manifest_path, MANIFEST_SCHEMA)
            mutate(manifest)
            manifest.updated_at = utc_now()
            after = self._data(manifest)
            with disk_errors("the manifest", ref.manifest_path):
                written = write_document(
                    ref.manifest_path, after, RunManifest, schema=MANIFEST_SCHEMA
                )
            changed = _changed_fields(before, after)
            self.audit.append(
                event, task_id=task_id, run_id=run_id, actor=actor, changed=changed, **detail
            )
        return written

    # -- artifacts -----------------------------------------------------------------

    def write_artifact(
        self,
        task_id: str,
        run_id: str,
        name: str,
        content: bytes | str,
        *,
        kind: str = "file",
        step_id: str | None = None,
        actor: str | None = None,
    ) -> ArtifactRecord:
        """Write a file under the run folder and record its sha256 and size.

        Text is redacted before it is written. Writing the same name again replaces
        the file and its record.
        """
        record = self.store_artifact(task_id, run_id, name, content, kind=kind, step_id=step_id)

        def add(manifest: RunManifest) -> None:
            add_artifacts(manifest, [record])

        self.update(task_id, run_id, add, event="artifact.written", actor=actor, artifact=name)
        return record

    def store_artifact(
        self,
        task_id: str,
        run_id: str,
        name: str,
        content: bytes | str,
        *,
        kind: str = "file",
        step_id: str | None = None,
    ) -> ArtifactRecord:
        """Write the file only (redacted text, atomically) and return its record.

        The caller records it in the manifest with :func:`add_artifacts`, e.g. in the
        same update that marks its step done.
        """
        path = self.artifact_path(self.ref(task_id, run_id), name)
        data = self.redactor.redact(content).encode() if isinstance(content, str) else content
        with disk_errors(f"artifact {name}", path):
            atomic_write(path, data)
        return ArtifactRecord(
            name=name,
            kind=kind,
            sha256=sha256_bytes(data),
            size=len(data),
            step_id=step_id,
            created_at=utc_now(),
        )

    def artifact_path(self, ref: RunRef, name: str) -> Path:
        """The path of artifact ``name``; each level must be a safe id."""
        parts = name.split("/")
        for part in parts:
            safe_id(part, what="artifact name")
        if parts[-1] == MANIFEST_NAME and len(parts) == 1:
            raise InvalidInputError("an artifact cannot be named manifest.json")
        return ref.path.joinpath(*parts)

    def artifact_intact(self, task_id: str, run_id: str, record: ArtifactRecord) -> bool:
        """True when the artifact's file exists with the recorded sha256."""
        path = self.artifact_path(self.ref(task_id, run_id), record.name)
        return path.is_file() and sha256_file(path) == record.sha256

    # -- internals -----------------------------------------------------------------

    def _existing(self, task_id: str, run_id: str) -> RunRef:
        ref = self.ref(task_id, run_id)
        if not ref.manifest_path.exists():
            raise RunNotFoundError(f"no run {task_id}/{run_id} under {self.root}", run_id=run_id)
        return ref

    def _locked(self, ref: RunRef) -> contextlib.AbstractContextManager[None]:
        return locked(ref.manifest_path, timeout=self.lock_timeout)

    def _data(self, manifest: RunManifest) -> dict[str, Any]:
        data: dict[str, Any] = self.redactor.redact_data(manifest.model_dump(mode="json"))
        return data


def add_artifacts(manifest: RunManifest, records: list[ArtifactRecord]) -> None:
    """Record artifacts in ``manifest``, replacing any earlier record of the same name."""
    names = {record.name for record in records}
    manifest.artifacts = [a for a in manifest.artifacts if a.name not in names] + records


def load_manifest(path: Path) -> RunManifest:
    """Parse and validate a manifest file; never changes it."""
    return load_document(path, RunManifest, schema=MANIFEST_SCHEMA)


def _changed_fields(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The top-level fields whose written form changed (``updated_at`` always does)."""
    return [
        name
        for name in RunManifest.model_fields
        if name != "updated_at" and before.get(name) != after.get(name)
    ]
