"""Library drafts: left by runs, accepted only with a person's entry."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.exceptions import LibraryError
from orchestrator.library import Library
from orchestrator.library_drafts import accept, list_drafts, load_draft, propose
from schemas import DraftOrigin, LibraryEntry
from tests.helpers.library import entry_data


@pytest.fixture
def library(tmp_path: Path) -> Library:
    return Library(tmp_path / "library" / "index.yaml", runs_dir=tmp_path / ".runs")


def test_a_run_leaves_one_draft_per_origin_even_when_resumed(library: Library) -> None:
    first = propose(library, origin=DraftOrigin.PLAN_REJECTED, task_id="t", run_id="r", reason="x")
    again = propose(library, origin=DraftOrigin.PLAN_REJECTED, task_id="t", run_id="r", reason="y")
    other = propose(
        library, origin=DraftOrigin.CHANGES_REQUESTED, task_id="t", run_id="r", reason="z"
    )

    assert again == first and again.reason == "x"
    assert [d.id for d in list_drafts(library)] == [first.id, other.id]
    assert not library.index_path.exists()


def test_accepting_records_the_entry_with_its_origin_once(library: Library) -> None:
    draft = propose(
        library, origin=DraftOrigin.HANDOVER_REJECTED, task_id="t", run_id="r", reason="prints"
    )
    entry = LibraryEntry.model_validate(entry_data())

    recorded = accept(library, draft.id, entry, approver="Ada")

    assert recorded.ref == "no-print@1.2.0"
    assert library.resolve("no-print").origin == (
        f"{draft.id}: handover-rejected in run t/r, accepted by Ada"
    )
    assert list_drafts(library) == []
    [done] = list_drafts(library, every=True)
    assert (done.accepted_as, done.accepted_by) == ("no-print@1.2.0", "Ada")
    with pytest.raises(LibraryError, match=r"already accepted as no-print@1\.2\.0"):
        accept(library, draft.id, entry, approver="Ada")


def test_a_second_draft_for_a_known_name_is_a_new_version(library: Library) -> None:
    one = propose(library, origin=DraftOrigin.PLAN_REJECTED, task_id="t", run_id="a", reason="")
    two = propose(library, origin=DraftOrigin.PLAN_REJECTED, task_id="t", run_id="b", reason="")
    accept(library, one.id, LibraryEntry.model_validate(entry_data()), approver="Ada")
    bumped = LibraryEntry.model_validate(
        entry_data(version="1.3.0", run={"args": ["--select", "T"]})
    )

    assert accept(library, two.id, bumped, approver="Ada").ref == "no-print@1.3.0"


def test_an_unknown_or_unsafe_draft_id_is_one_clear_error(library: Library) -> None:
    for draft_id in ("draft-000000000000", "../index"):
        with pytest.raises(LibraryError, match="no draft"):
            load_draft(library, draft_id)
