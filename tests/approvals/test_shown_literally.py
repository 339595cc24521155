"""What an approver reads of agent text is what the agent wrote: gates and artifacts."""

from __future__ import annotations

from typing import Any

import pytest

from flows import _artifacts
from orchestrator.approvals import command_markdown, handover_markdown, plan_markdown
from orchestrator.lifecycle import RunHandle
from schemas import Plan, ReviewVerdict, RunManifest, RunResult, RunStatus, TestReport
from tests.helpers.markdown import cells, in_terminal, tags, visible_text

SUMMARY = "Touch textkit/__init__.py, **x**, <img src=x> and [link](http://x) | a `tick`"
TITLE = "Export from __init__.py | **bold** <img src=x>"
FILES = ["textkit/__init__.py", "docs/[link](http://x).md", "a|b.py"]
ACCEPTANCE = ["`__all__` lists **x**", "<b>not bold</b>"]
TAGS_OF_AGENT_TEXT = {"em", "img", "a", "b", "script", "h1", "blockquote"}  # none of ours


def words(text: str) -> str:
    return " ".join(text.split())


def assert_literal(shown: str, *texts: str) -> None:
    """Each text shows exactly as written, in a browser and in the terminal."""
    seen, printed = words(visible_text(shown)), words(in_terminal(shown))
    for text in texts:
        assert words(text) in seen, (text, seen)
        assert words(text) in printed, (text, printed)
    assert not TAGS_OF_AGENT_TEXT & set(tags(shown))


def test_the_plan_gate_shows_the_planners_text_exactly(handle: RunHandle) -> None:
    rows = [("export", TITLE, "; ".join(ACCEPTANCE), ", ".join(FILES))]
    shown = plan_markdown(handle, SUMMARY, rows)
    assert_literal(shown, SUMMARY, TITLE, *ACCEPTANCE, *FILES)
    assert cells(shown) == ["export", words(TITLE)]  # the pipe did not split the row


def test_the_command_gate_shows_the_command_its_reason_and_files_exactly(
    handle: RunHandle,
) -> None:
    command = "printf '**x** <img src=x> | `y`' > textkit/__init__.py"
    reason = "fix [link](http://x) in __init__.py | **now**"
    shown = command_markdown(handle, command=command, cwd="/w/__init__", justification=reason)
    assert_literal(shown, command, reason, "/w/__init__")
    patch = command_markdown(handle, command="", cwd=None, kind="patch", files=FILES)
    assert_literal(patch, *FILES)
    assert cells(patch)[-1] == " , ".join(FILES)  # one cell, each file in a code span


def test_the_handover_gate_shows_the_diff_stat_and_branch_exactly(handle: RunHandle) -> None:
    manifest = handle.read()
    manifest.result = RunResult(
        branch="orchestrator/t/r/result",
        diff_stat=" textkit/__init__.py | 2 +-\n ```` | 1 +",
        tests_passed=True,
        verdict="approve",
    )
    shown = handover_markdown(manifest)
    assert_literal(shown, "textkit/__init__.py | 2 +-", "```` | 1 +", "orchestrator/t/r/result")


class Published:
    """What the flows would send to Prefect as artifacts (captured, not sent)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.tables: list[tuple[list[dict[str, Any]], str]] = []
        self.markdown: list[tuple[str, str]] = []

        async def table(rows: list[dict[str, Any]], **kw: Any) -> None:
            self.tables.append((rows, kw["description"]))

        async def markdown(text: str, **kw: Any) -> None:
            self.markdown.append((text, kw["description"]))

        monkeypatch.setattr(_artifacts, "acreate_table_artifact", table)
        monkeypatch.setattr(_artifacts, "acreate_markdown_artifact", markdown)


@pytest.mark.anyio
async def test_artifacts_show_agent_text_exactly(
    handle: RunHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    published = Published(monkeypatch)
    plan = Plan.model_validate(
        {
            "summary": SUMMARY,
            "subtasks": [
                {"id": "export", "title": TITLE, "acceptance": ACCEPTANCE, "files": FILES}
            ],
        }
    )
    await _artifacts.publish_plan(handle, plan)
    [(rows, description)] = published.tables
    assert_literal(description, SUMMARY)
    # Prefect's UI renders every string cell as markdown of its own.
    for column, text in [("title", TITLE), ("files", ", ".join(FILES))]:
        assert_literal(rows[0][column], text)
        assert words(visible_text(rows[0][column])) == words(text)

    await _artifacts.publish_tests(
        handle, TestReport(command="pytest -k 'a|b' `x`", exit_code=0, passed=True, summary=TITLE)
    )
    verdict = ReviewVerdict.model_validate(
        {"verdict": "approve", "reasons": [SUMMARY, "# heading?"], "summary": TITLE}
    )
    await _artifacts.publish_verdict(handle, verdict)
    manifest: RunManifest = handle.read()
    manifest.status = RunStatus.FAILED
    manifest.status_reason = "reviewer requested changes: **x** <img src=x>"
    manifest.result = RunResult(branch="b", commit="0" * 40, diff_stat="```` | 1 +")
    await _artifacts.publish_summary(handle, manifest)
    tests_md, review_md, summary_md = (text for text, _ in published.markdown)
    assert_literal(tests_md, "pytest -k 'a|b' `x`", TITLE)
    assert cells(tests_md)[0] == "pytest -k 'a|b' `x`"
    assert_literal(review_md, SUMMARY, "# heading?", TITLE)
    assert_literal(summary_md, "reviewer requested changes: **x** <img src=x>", "```` | 1 +")
