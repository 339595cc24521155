"""The learning library: an index of versioned codemods, linters and templates.

The index (``library/index.yaml`` under the orchestrator's home by default, or
``ORCHESTRATOR_LIBRARY_INDEX``) keeps every version of every entry, so a run pinned
to an old version still finds it. Versions only ever get added: ``add`` records a
new entry, ``bump`` a new version of one, and the version has to move as far as the
change demands (:func:`required_bump`). Scripts live next to the index and are
pinned by their sha256. A version a run recorded in its manifest (``AgentStep.library``)
can no longer be replaced.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from semver import Version

from schemas import LibraryEntry, LibraryIndex, LibraryKind, schema_errors

from ._documents import first_problem, load_yaml, yaml_problem
from ._versions import Bump, VersionRange, bump_between, parse_version
from .exceptions import LibraryError
from .runstore import MANIFEST_NAME, atomic_write, load_manifest, locked
from .settings import Settings

INDEX_SCHEMA = "library-index"
ModelT = TypeVar("ModelT", bound=BaseModel)
MAX_LIBRARY_FILE_BYTES = 1024 * 1024
INDEX_HEADER = (
    "# The learning library's index (docs/library.md). Written by 'orchestrator library\n"
    "# add|bump': recorded versions never change; a change is a new version.\n"
)


@dataclass(frozen=True)
class BumpResult:
    previous: LibraryEntry
    entry: LibraryEntry
    required: Bump


class Library:
    """The index at ``index_path``; writes happen under its file lock, atomically.

    Args:
        index_path: The index file (its folder is the library root scripts are relative to).
        runs_dir: The ``.runs`` folder whose manifests record which versions were used.
        lock_timeout: Seconds to wait for another writer.
    """

    def __init__(self, index_path: Path, *, runs_dir: Path, lock_timeout: float = 60.0) -> None:
        self.index_path = index_path
        self.runs_dir = runs_dir
        self.lock_timeout = lock_timeout

    @classmethod
    def of(cls, settings: Settings, index_path: Path | None = None) -> Library:
        """The environment's library (``settings.library_index_path``, or ``index_path``)."""
        return cls(
            index_path or settings.library_index_path,
            runs_dir=settings.runs_dir,
            lock_timeout=settings.lock_timeout,
        )

    @property
    def root(self) -> Path:
        return self.index_path.parent

    def load(self) -> LibraryIndex:
        """The index, validated; an empty one when the file does not exist yet.

        Raises:
            LibraryError: the file does not parse or validate (names the field).
        """
        if not self.index_path.exists():
            return LibraryIndex()
        return load_index(self.index_path)

    def find(
        self, *, tags: Iterable[str] = (), kind: LibraryKind | None = None, every: bool = False
    ) -> list[LibraryEntry]:
        """Entries carrying every tag in ``tags`` (and of ``kind``), sorted by name.

        Only each name's highest released version, unless ``every``.
        """
        wanted = set(tags)
        entries = [
            e for e in self.load().entries if wanted <= set(e.tags) and kind in (None, e.kind)
        ]
        if not every:
            entries = [_highest(group) for group in _by_name(entries).values()]
        return sorted(entries, key=lambda e: (e.name, parse_version(e.version)))

    def resolve(self, pin: str) -> LibraryEntry:
        """The highest version matching ``name``, ``name@^1.2``, ``name@1.2.3`` etc.

        Raises:
            LibraryError: bad pin, unknown name, or no version in the range.
        """
        name, _, text = pin.partition("@")
        wanted = VersionRange.parse(text)
        versions = [e for e in self.load().entries if e.name == name]
        if not versions:
            raise LibraryError(f"no library entry {name!r} in {self.index_path}", entry=pin)
        matching = [e for e in versions if wanted.matches(parse_version(e.version))]
        if not matching:
            known = ", ".join(sorted((e.version for e in versions), key=parse_version))
            raise LibraryError(
                f"no version of {name!r} matches {wanted.text!r} (recorded: {known})", entry=pin
            )
        return max(matching, key=lambda e: parse_version(e.version))

    def add(self, entry: LibraryEntry, *, replace: bool = False) -> LibraryEntry:
        """Record a new entry (or, with ``replace``, a version no run has used yet).

        Raises:
            LibraryError: the name exists (use :meth:`bump`), the version exists (and is
                used by a run, or ``replace`` is off), or its script is missing or changed.
        """
        entry = self._with_script_hash(entry)
        with self._changing() as index:
            same_name = [e for e in index.entries if e.name == entry.name]
            existing = next((e for e in same_name if e.version == entry.version), None)
            if existing is None and same_name:
                raise LibraryError(
                    f"{entry.name!r} is already in the library; 'library bump' records a new "
                    "version",
                    entry=entry.ref,
                )
            if existing is not None:
                self._check_replaceable(existing, replace=replace)
                index.entries.remove(existing)
            index.entries.append(entry)
        return entry

    def bump(self, entry: LibraryEntry, *, breaking: bool = False) -> BumpResult:
        """Record a new version of an existing entry, checking the version moved far enough.

        Compared with the highest recorded version below it: a breaking change (``breaking``,
        another tool or kind, a language dropped) needs a major bump, a change to how it runs
        a minor one, anything else a patch.

        Raises:
            LibraryError: unknown name, version already recorded, nothing changed, or the
                version moved less than the change needs.
        """
        if not self.index_path.exists():
            raise LibraryError(f"no library index at {self.index_path}; nothing to bump")
        entry = self._with_script_hash(entry)
        with self._changing() as index:
            previous = _predecessor(index, entry)
            required = required_bump(previous, entry, breaking=breaking)
            _check_bump(previous, entry, required)
            index.entries.append(entry)
        return BumpResult(previous=previous, entry=entry, required=required)

    def recorded_refs(self) -> set[str]:
        """Every ``name@version`` a run's manifest under ``runs_dir`` records.

        Raises:
            ManifestCorruptError: a manifest cannot be read, so nobody can tell.
        """
        refs: set[str] = set()
        for path in sorted(self.runs_dir.glob(f"*/*/{MANIFEST_NAME}")):
            manifest = load_manifest(path)
            for _, phase in manifest.phases:
                refs.update(ref for step in phase.steps for ref in step.library)
        return refs

    def _check_replaceable(self, existing: LibraryEntry, *, replace: bool) -> None:
        if not replace:
            raise LibraryError(
                f"{existing.ref} is already recorded; versions are immutable: 'library bump' "
                "records a new one (or --replace, while no run has used it)",
                entry=existing.ref,
            )
        if existing.ref in self.recorded_refs():
            raise LibraryError(
                f"{existing.ref} was used by a run under {self.runs_dir}; it can no longer "
                "change: 'library bump' records a new version",
                entry=existing.ref,
            )

    def _with_script_hash(self, entry: LibraryEntry) -> LibraryEntry:
        if entry.run.script is None:
            return entry
        _, digest = checked_script(entry, self.root)
        run = entry.run.model_copy(update={"script_sha256": digest})
        return entry.model_copy(update={"run": run})

    @contextlib.contextmanager
    def _changing(self) -> Iterator[LibraryIndex]:
        """The index, read under its lock; written back (validated) if the block succeeds."""
        self.index_path.parent.mkdir(parents=True, exist_ok=True)
        with locked(self.index_path, timeout=self.lock_timeout):
            index = self.load()
            yield index
            # list edits skip pydantic's assignment checks: validate the whole index again
            _write_index(
                self.index_path, _validated(LibraryIndex, index.model_dump(), self.index_path)
            )


def checked_script(entry: LibraryEntry, root: Path) -> tuple[Path, str]:
    """The entry's script under ``root`` and its sha256, checked against the recorded hash.

    Raises:
        LibraryError: the entry has no script, the file is missing, or it changed since
            the entry recorded its hash (a changed script is a new version).
    """
    if entry.run.script is None:
        raise LibraryError(f"{entry.ref} has no run.script", entry=entry.ref)
    path = root / entry.run.script
    if not path.is_file():
        raise LibraryError(
            f"{entry.ref}: run.script {entry.run.script!r} is not a file in {root}",
            entry=entry.ref,
        )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if entry.run.script_sha256 not in (None, digest):
        raise LibraryError(
            f"{entry.ref}: {entry.run.script} does not match run.script_sha256: it changed "
            "since the entry was recorded, and a changed script is a new version",
            entry=entry.ref,
        )
    return path, digest


def load_index(path: Path) -> LibraryIndex:
    """Parse and validate an index file (YAML or JSON).

    Raises:
        LibraryError: it does not parse, or fails its model or its JSON Schema.
    """
    data = read_library_file(path)
    index = _validated(LibraryIndex, data, path)
    error = schema_errors(INDEX_SCHEMA, data)
    if error:  # the committed schema is the contract other tools write against
        raise LibraryError(f"{path}: {error}", path=str(path))
    return index


def load_entry_file(path: Path) -> LibraryEntry:
    """One entry from a YAML or JSON file, as ``library add`` and ``bump`` take it.

    Raises:
        LibraryError: it does not parse or validate (names the field).
    """
    return _validated(LibraryEntry, read_library_file(path), path)


def read_library_file(path: Path) -> dict[str, Any]:
    """A YAML (or JSON) mapping from ``path``.

    Raises:
        LibraryError: missing, too large, not UTF-8, not YAML, or not a mapping.
    """
    try:
        if path.stat().st_size > MAX_LIBRARY_FILE_BYTES:
            raise LibraryError(
                f"{path}: larger than {MAX_LIBRARY_FILE_BYTES} bytes", path=str(path)
            )
        data = load_yaml(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LibraryError(f"{path}: no such file", path=str(path)) from None
    except UnicodeDecodeError:
        raise LibraryError(f"{path}: not UTF-8 text", path=str(path)) from None
    except yaml.YAMLError as exc:
        raise LibraryError(f"{path}: not valid YAML: {yaml_problem(exc)}", path=str(path)) from None
    if not isinstance(data, dict):
        raise LibraryError(f"{path}: the document must be a mapping of fields", path=str(path))
    return data


def required_bump(old: LibraryEntry, new: LibraryEntry, *, breaking: bool = False) -> Bump:
    """The least version bump that going from ``old`` to ``new`` needs.

    MAJOR: declared breaking, another kind or tool, or a language no longer covered.
    MINOR: how it runs changed (``run``: script, its hash, arguments, timeout).
    PATCH: anything else (description, tags, globs, languages added). NONE: nothing.
    """
    dropped = set(old.applies_to.languages) - set(new.applies_to.languages)
    if breaking or old.kind != new.kind or old.tool != new.tool or dropped:
        return Bump.MAJOR
    if old.run != new.run:
        return Bump.MINOR
    unversioned = {"version"}
    if old.model_dump(exclude=unversioned) != new.model_dump(exclude=unversioned):
        return Bump.PATCH
    return Bump.NONE


def _check_bump(previous: LibraryEntry, entry: LibraryEntry, required: Bump) -> None:
    if required is Bump.NONE:
        raise LibraryError(
            f"{entry.ref} changes nothing from {previous.ref}; nothing to record", entry=entry.ref
        )
    moved = bump_between(parse_version(previous.version), parse_version(entry.version))
    if moved >= required:
        return
    suggestion = _next_version(parse_version(previous.version), required)
    raise LibraryError(
        f"{previous.ref} -> {entry.version} is a {moved.name.lower()} bump; this change needs "
        f"at least a {required.name.lower()} bump ({suggestion})",
        entry=entry.ref,
    )


def _next_version(version: Version, bump: Bump) -> Version:
    if bump is Bump.MAJOR:
        return version.bump_major()
    return version.bump_minor() if bump is Bump.MINOR else version.bump_patch()


def _predecessor(index: LibraryIndex, entry: LibraryEntry) -> LibraryEntry:
    versions = [e for e in index.entries if e.name == entry.name]
    if not versions:
        raise LibraryError(
            f"no library entry {entry.name!r} to bump; 'library add' records a new one",
            entry=entry.ref,
        )
    if any(e.version == entry.version for e in versions):
        raise LibraryError(
            f"{entry.ref} is already recorded; versions are immutable: give the change a "
            "higher version",
            entry=entry.ref,
        )
    new = parse_version(entry.version)
    below = [e for e in versions if parse_version(e.version) < new]
    if not below:
        raise LibraryError(
            f"{entry.ref} is lower than every recorded version of {entry.name!r}",
            entry=entry.ref,
        )
    return max(below, key=lambda e: parse_version(e.version))


def _write_index(path: Path, index: LibraryIndex) -> None:
    entries = sorted(index.entries, key=lambda e: (e.name, parse_version(e.version)))
    data = index.model_copy(update={"entries": entries}).model_dump(mode="json", exclude_none=True)
    error = schema_errors(INDEX_SCHEMA, data)
    if error:  # pragma: no cover - the model and the schema are generated together
        raise LibraryError(f"refusing to write an invalid index: {error}", path=str(path))
    text = INDEX_HEADER + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    atomic_write(path, text.encode("utf-8"))


def _validated(model: type[ModelT], data: dict[str, Any], path: Path) -> ModelT:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        field, reason = first_problem(exc)
        where = f"{path}: field '{_named(field, data)}'" if field else str(path)
        raise LibraryError(f"{where}: {reason}", path=str(path)) from None


def _named(field: str, data: dict[str, Any]) -> str:
    """``entries.2.tool`` as ``entries.2 (name).tool``, so a person finds the entry."""
    parts = field.split(".")
    if len(parts) < 2 or parts[0] != "entries" or not parts[1].isdigit():
        return field
    entries = data.get("entries")
    position = int(parts[1])
    if not isinstance(entries, list) or position >= len(entries):
        return field
    name = entries[position].get("name") if isinstance(entries[position], dict) else None
    return field if name is None else ".".join([f"entries.{position} ({name})", *parts[2:]])


def _by_name(entries: Iterable[LibraryEntry]) -> dict[str, list[LibraryEntry]]:
    groups: dict[str, list[LibraryEntry]] = {}
    for entry in entries:
        groups.setdefault(entry.name, []).append(entry)
    return groups


def _highest(entries: list[LibraryEntry]) -> LibraryEntry:
    released = [e for e in entries if not parse_version(e.version).prerelease] or entries
    return max(released, key=lambda e: parse_version(e.version))
