"""Drafts: what a run proposes to the learning library, for a person to accept or leave.

A plan or hand-over a person rejected, or a reviewer's ``request_changes``, leaves a
draft under the index's folder (``drafts/<id>.yaml``): the run, what happened and the
words given. Nothing enters the index from a draft by itself: ``library accept`` takes a
person's entry file, records it (``add``, or ``bump`` for a known name) with the draft
as its ``origin``, and marks the draft accepted.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml

from schemas import DraftOrigin, LibraryDraft, LibraryEntry, utc_now

from .exceptions import LibraryError
from .library import Library, read_library_file
from .runstore import atomic_write, locked

DRAFTS_FOLDER = "drafts"


def drafts_dir(library: Library) -> Path:
    return library.root / DRAFTS_FOLDER


def propose(
    library: Library, *, origin: DraftOrigin, task_id: str, run_id: str, reason: str
) -> LibraryDraft:
    """Leave a draft for this run and origin (once: a resumed run finds the one it left)."""
    key = f"{task_id}/{run_id}/{origin.value}".encode()
    draft_id = f"draft-{hashlib.sha256(key).hexdigest()[:12]}"
    path = drafts_dir(library) / f"{draft_id}.yaml"
    if path.exists():
        return load_draft(library, draft_id)
    draft = LibraryDraft(
        id=draft_id,
        created_at=utc_now(),
        origin=origin,
        task_id=task_id,
        run_id=run_id,
        reason=reason[:4000],
    )
    _write(path, draft)
    return draft


def list_drafts(library: Library, *, every: bool = False) -> list[LibraryDraft]:
    """The drafts waiting for a person (``every``: accepted ones too), oldest first."""
    folder = drafts_dir(library)
    drafts = [_load(path) for path in sorted(folder.glob("draft-*.yaml"))]
    waiting = [d for d in drafts if every or d.accepted_as is None]
    return sorted(waiting, key=lambda d: d.created_at)


def load_draft(library: Library, draft_id: str) -> LibraryDraft:
    """Raises: LibraryError: no such draft, or it does not validate."""
    path = drafts_dir(library) / f"{draft_id}.yaml"
    if "/" in draft_id or not path.is_file():
        raise LibraryError(f"no draft {draft_id!r} in {drafts_dir(library)}")
    return _load(path)


def accept(library: Library, draft_id: str, entry: LibraryEntry, *, approver: str) -> LibraryEntry:
    """Record ``entry`` from the draft and mark the draft accepted.

    Raises:
        LibraryError: no such draft, the draft is already accepted, or the index refuses
            the entry (as ``library add`` / ``bump`` would).
    """
    path = drafts_dir(library) / f"{draft_id}.yaml"
    with locked(path, timeout=library.lock_timeout):
        draft = load_draft(library, draft_id)
        if draft.accepted_as is not None:
            raise LibraryError(f"draft {draft_id} was already accepted as {draft.accepted_as}")
        origin = (
            f"{draft.id}: {draft.origin.value} in run {draft.task_id}/{draft.run_id}, "
            f"accepted by {approver}"
        )
        entry = entry.model_copy(update={"origin": origin})
        known = any(e.name == entry.name for e in library.load().entries)
        recorded = library.bump(entry).entry if known else library.add(entry)
        _write(
            path, draft.model_copy(update={"accepted_as": recorded.ref, "accepted_by": approver})
        )
    return recorded


def _load(path: Path) -> LibraryDraft:
    data = read_library_file(path)
    try:
        return LibraryDraft.model_validate(data)
    except ValueError as exc:
        raise LibraryError(f"{path}: not a valid draft: {exc}", path=str(path)) from None


def _write(path: Path, draft: LibraryDraft) -> None:
    text = yaml.safe_dump(draft.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
    atomic_write(path, text.encode())
