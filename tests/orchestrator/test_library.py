from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from orchestrator.exceptions import LibraryError
from orchestrator.library import Library, load_entry_file, load_index
from orchestrator.workspace import Workspace
from schemas import LibraryEntry, LibraryIndex, LibraryKind
from tests.conftest import REPO_ROOT
from tests.helpers.library import codemod_data, entry_data, record_use, write_yaml


@pytest.fixture
def library(workspace: Workspace) -> Library:
    return Library(workspace.settings.library_index_path, runs_dir=workspace.settings.runs_dir)


def _entry(**changes: object) -> LibraryEntry:
    return LibraryEntry.model_validate(entry_data(**changes))


def _index_with(path: Path, *entries: dict[str, object]) -> Path:
    return write_yaml(path, {"schema_version": 1, "entries": list(entries)})


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        (
            [entry_data(), entry_data(description="again")],
            "no-print@1.2.0 is in the index twice",
        ),
        ([entry_data(version="1.2")], r"field 'entries\.0 \(no-print\)\.version'"),
        ([entry_data(version="1.2.0+build")], r"field 'entries\.0 \(no-print\)\.version'"),
        ([entry_data(tool="prettier")], r"field 'entries\.0 \(no-print\)\.tool'"),
        ([entry_data(kind="codemod")], "tool 'ruff' does not run codemod entries"),
        ([codemod_data(run={"args": []})], "tool 'libcst' needs run.script"),
        ([codemod_data(run={"script": "../x.py"})], "must be a path inside the library"),
        ([entry_data(applies_to={"languages": []})], "applies_to.languages"),
        ([entry_data(owner="me")], r"field 'entries\.0 \(no-print\)\.owner': unknown field"),
    ],
)
def test_the_index_refuses_bad_entries_naming_the_field(
    tmp_path: Path, entries: list[dict[str, object]], message: str
) -> None:
    path = _index_with(tmp_path / "index.yaml", *entries)
    with pytest.raises(LibraryError, match=message) as caught:
        load_index(path)
    assert str(path) in str(caught.value)


def test_a_missing_index_is_empty_and_add_creates_it(library: Library) -> None:
    assert library.load() == LibraryIndex()
    library.add(_entry())
    assert library.index_path.read_text().startswith("# The learning library's index")
    assert [e.ref for e in load_index(library.index_path).entries] == ["no-print@1.2.0"]


def test_find_by_tag_and_kind_shows_each_names_highest_release(library: Library) -> None:
    library.add(_entry())
    library.bump(_entry(version="1.3.0", run={"args": ["--select", "T20"]}))
    library.bump(_entry(version="2.0.0-rc.1", tags=["python"]), breaking=True)
    (library.root / "codemods").mkdir(parents=True)
    (library.root / "codemods" / "rename.py").write_text("# a codemod\n")
    library.add(LibraryEntry.model_validate(codemod_data()))

    assert [e.ref for e in library.find(tags=["hygiene"])] == ["no-print@1.3.0"]
    assert [e.ref for e in library.find(tags=["python"])] == [
        "no-print@1.3.0",
        "rename-helpers@0.1.0",
    ]
    assert [e.ref for e in library.find(kind=LibraryKind.CODEMOD)] == ["rename-helpers@0.1.0"]
    assert len(library.find(every=True)) == 4


def test_resolve_picks_the_highest_version_in_the_range(library: Library) -> None:
    library.add(_entry())
    library.bump(_entry(version="1.3.0", run={"args": ["--select", "T20"]}))
    library.bump(_entry(version="2.0.0", applies_to={"languages": ["cython"]}))
    library.bump(_entry(version="2.1.0-rc.1", applies_to={"languages": ["cython"]}, tags=[]))

    assert library.resolve("no-print@^1.2").version == "1.3.0"
    assert library.resolve("no-print@~1.2").version == "1.2.0"
    assert library.resolve("no-print@1.2.0").version == "1.2.0"
    assert library.resolve("no-print").version == "2.0.0"
    assert library.resolve("no-print@2.1.0-rc.1").version == "2.1.0-rc.1"
    with pytest.raises(LibraryError, match=r"no version of 'no-print' matches '\^3'"):
        library.resolve("no-print@^3")
    with pytest.raises(LibraryError, match="no library entry 'nope'"):
        library.resolve("nope@^1")


def test_add_refuses_a_known_name_or_version(library: Library) -> None:
    library.add(_entry())
    with pytest.raises(LibraryError, match="already in the library; 'library bump'"):
        library.add(_entry(version="1.3.0"))
    with pytest.raises(LibraryError, match=r"no-print@1\.2\.0 is already recorded"):
        library.add(_entry(description="changed in place"))


def test_replace_works_until_a_run_records_the_version(
    library: Library, workspace: Workspace
) -> None:
    library.add(_entry())
    library.add(_entry(description="first fix"), replace=True)
    assert library.resolve("no-print@1.2.0").description == "first fix"

    record_use(workspace, "no-print@1.2.0")
    assert library.recorded_refs() == {"no-print@1.2.0"}
    before = library.index_path.read_bytes()
    with pytest.raises(LibraryError, match=r"was used by a run .* can no longer change"):
        library.add(_entry(description="second fix"), replace=True)
    assert library.index_path.read_bytes() == before


@pytest.mark.parametrize(
    ("changes", "breaking", "refused_version", "needed"),
    [
        ({"run": {"args": ["--select", "T20"]}}, False, "1.2.1", "minor bump (1.3.0)"),
        ({"run": {"args": ["--select", "T201"], "timeout_seconds": 5}}, False, "1.2.1", "1.3.0"),
        ({"tool": "command", "run": {"args": ["ruff", "check"]}}, False, "1.3.0", "2.0.0"),
        ({"applies_to": {"languages": ["cython"]}}, False, "1.9.0", "major bump (2.0.0)"),
        ({"description": "Clearer."}, True, "1.3.0", "major bump (2.0.0)"),
    ],
)
def test_bump_refuses_a_version_that_moves_less_than_the_change_needs(
    library: Library,
    changes: dict[str, object],
    breaking: bool,
    refused_version: str,
    needed: str,
) -> None:
    library.add(_entry())
    before = library.index_path.read_bytes()
    with pytest.raises(
        LibraryError, match=rf"-> {re.escape(refused_version)} is a .*{re.escape(needed)}"
    ):
        library.bump(_entry(version=refused_version, **changes), breaking=breaking)
    assert library.index_path.read_bytes() == before


def test_bump_records_a_new_version_beside_the_old_one(library: Library) -> None:
    library.add(_entry())
    result = library.bump(_entry(version="1.2.1", description="Clearer."))
    assert (result.previous.ref, result.entry.ref, result.required.name) == (
        "no-print@1.2.0",
        "no-print@1.2.1",
        "PATCH",
    )
    assert [e.ref for e in library.load().entries] == ["no-print@1.2.0", "no-print@1.2.1"]
    backport = library.bump(_entry(version="1.2.2", tags=["python"]))
    assert backport.previous.ref == "no-print@1.2.1"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (entry_data(), "no-print@1.2.0 is already recorded; versions are immutable"),
        (entry_data(version="1.3.0"), "changes nothing from no-print@1.2.0"),
        (entry_data(version="1.1.0", description="x"), "lower than every recorded version"),
        (entry_data(name="other"), "no library entry 'other' to bump"),
    ],
)
def test_bump_refuses_no_change_and_unknown_entries(
    library: Library, entry: dict[str, object], message: str
) -> None:
    library.add(_entry())
    with pytest.raises(LibraryError, match=message):
        library.bump(LibraryEntry.model_validate(entry))


def test_a_scripts_hash_is_recorded_and_a_changed_script_needs_a_minor_bump(
    library: Library,
) -> None:
    script = library.root / "codemods" / "rename.py"
    script.parent.mkdir(parents=True)
    script.write_text("# version one\n")
    added = library.add(LibraryEntry.model_validate(codemod_data()))
    assert added.run.script_sha256 == hashlib.sha256(b"# version one\n").hexdigest()

    script.write_text("# version two\n")
    with pytest.raises(LibraryError, match="minor bump"):
        library.bump(LibraryEntry.model_validate(codemod_data(version="0.1.1")))
    bumped = library.bump(LibraryEntry.model_validate(codemod_data(version="0.2.0")))
    assert bumped.entry.run.script_sha256 == hashlib.sha256(b"# version two\n").hexdigest()

    stale = codemod_data(version="0.3.0")
    stale["run"] = {**stale["run"], "script_sha256": added.run.script_sha256}
    with pytest.raises(LibraryError, match=r"does not match run\.script_sha256"):
        library.bump(LibraryEntry.model_validate(stale))
    script.unlink()
    with pytest.raises(LibraryError, match="is not a file"):
        library.bump(LibraryEntry.model_validate(codemod_data(version="1.0.0")))


def test_an_entry_file_names_the_bad_field(tmp_path: Path) -> None:
    path = write_yaml(tmp_path / "entry.yaml", entry_data(version="one"))
    with pytest.raises(LibraryError, match=r"entry\.yaml: field 'version'"):
        load_entry_file(path)
    (tmp_path / "list.yaml").write_text("- a\n")
    with pytest.raises(LibraryError, match="must be a mapping"):
        load_entry_file(tmp_path / "list.yaml")


def test_the_projects_own_index_is_valid() -> None:
    index = load_index(REPO_ROOT / "library" / "index.yaml")
    assert index.entries
