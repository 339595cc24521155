from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from orchestrator.exceptions import InvalidInputError, SpecError
from orchestrator.gitops import git
from orchestrator.specguard import check_specs, read_front_matter
from schemas import SpecRisk, SpecRule, SpecStatus
from tests.helpers.specs import commit_all, spec_repo, spec_text, write_spec

TODAY = date(2026, 12, 1)


def _rules(repo: Path, **options: object) -> list[tuple[str, SpecRule]]:
    report = check_specs(repo, today=TODAY, **options)  # type: ignore[arg-type]
    return [(f.file, f.rule) for f in report.findings]


def test_a_spec_reviewed_today_passes(tmp_path: Path) -> None:
    repo = spec_repo(tmp_path / "repo", TODAY)
    report = check_specs(repo, today=TODAY)
    assert report.ok
    assert report.checked == ["docs/specs/0001-widgets.md"]


def test_thirty_days_is_fresh_and_thirty_one_is_stale(tmp_path: Path) -> None:
    repo = spec_repo(tmp_path / "repo", TODAY - timedelta(days=30))
    assert _rules(repo) == []
    write_spec(repo, "docs/specs/0001-widgets.md", spec_text(TODAY - timedelta(days=31)))
    report = check_specs(repo, today=TODAY)
    assert [(f.file, f.rule) for f in report.findings] == [
        ("docs/specs/0001-widgets.md", SpecRule.STALE_REVIEW)
    ]
    assert "31 days ago" in report.findings[0].detail


def test_the_limit_comes_from_the_settings_and_the_option_overrides_it(tmp_path: Path) -> None:
    repo = spec_repo(tmp_path / "repo", TODAY - timedelta(days=10))
    assert _rules(repo, max_age_days=9) == [("docs/specs/0001-widgets.md", SpecRule.STALE_REVIEW)]
    pyproject = repo / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("max-age-days = 30", "max-age-days = 5"))
    assert _rules(repo) == [("docs/specs/0001-widgets.md", SpecRule.STALE_REVIEW)]
    assert _rules(repo, max_age_days=10) == []


def test_a_review_in_the_future_or_missing_is_a_finding(tmp_path: Path) -> None:
    repo = spec_repo(tmp_path / "repo", TODAY + timedelta(days=1))
    write_spec(repo, "docs/specs/0002-gadgets.md", spec_text(None))
    assert _rules(repo) == [
        ("docs/specs/0001-widgets.md", SpecRule.FUTURE_REVIEW),
        ("docs/specs/0002-gadgets.md", SpecRule.MISSING_REVIEW),
    ]


@pytest.mark.parametrize("status", ["archived", "done", "superseded"])
def test_inactive_specs_are_skipped(tmp_path: Path, status: str) -> None:
    repo = spec_repo(tmp_path / "repo", TODAY)
    write_spec(repo, "docs/specs/0000-old.md", spec_text("2020-01-01", status=status))
    report = check_specs(repo, today=TODAY)
    assert report.ok
    assert report.skipped == ["docs/specs/0000-old.md"]


def test_code_changed_without_a_spec_change_is_a_finding(tmp_path: Path) -> None:
    repo = spec_repo(tmp_path / "repo", TODAY)
    git(repo, "switch", "-qc", "feature")
    (repo / "src" / "widgets.py").write_text("WIDGETS = 2\n")
    commit_all(repo, "more widgets")
    (repo / "src" / "gadgets.py").write_text("GADGETS = 1\n")  # untracked counts too
    (repo / "README.md").write_text("# widgets, outside the code paths\n")

    assert _rules(repo, base="main") == [
        ("src/gadgets.py", SpecRule.CODE_WITHOUT_SPEC),
        ("src/widgets.py", SpecRule.CODE_WITHOUT_SPEC),
    ]
    write_spec(repo, "docs/specs/0001-widgets.md", spec_text(TODAY) + "- Gadgets too.\n")
    assert _rules(repo, base="main") == []


def test_without_code_paths_every_file_outside_the_spec_folders_is_code(tmp_path: Path) -> None:
    repo = spec_repo(tmp_path / "repo", TODAY)
    (repo / "pyproject.toml").write_text("[project]\nname = 'widgets'\n")
    commit_all(repo, "no guard settings")
    (repo / "README.md").write_text("# changed\n")
    assert _rules(repo, base="HEAD") == [("README.md", SpecRule.CODE_WITHOUT_SPEC)]


def test_an_unknown_base_is_bad_input(tmp_path: Path) -> None:
    repo = spec_repo(tmp_path / "repo", TODAY)
    with pytest.raises(InvalidInputError, match="--base 'nope' is not a commit"):
        check_specs(repo, base="nope", today=TODAY)


def test_paths_narrow_the_check_to_named_specs(tmp_path: Path) -> None:
    repo = spec_repo(tmp_path / "repo", "2020-01-01")
    fresh = write_spec(repo, "tasks/specs/0002-fresh.md", spec_text(TODAY))
    report = check_specs(repo, today=TODAY, paths=[fresh])
    assert report.ok
    assert report.checked == ["tasks/specs/0002-fresh.md"]
    with pytest.raises(InvalidInputError, match="outside the repository"):
        check_specs(repo, today=TODAY, paths=[tmp_path])


def test_the_seed_front_matter_parses(tmp_path: Path) -> None:
    path = write_spec(tmp_path, "spec.md", spec_text("2025-10-16"))
    front = read_front_matter(path)
    assert (front.id, front.risk, front.status) == (
        "20261101-widgets",
        SpecRisk.MEDIUM,
        SpecStatus.ACTIVE,
    )
    assert front.last_review == date(2025, 10, 16)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("# no front matter\n", "no front matter"),
        ("---\nid: x\n", "not closed"),
        ("---\nid: [x\n---\n", "not valid YAML"),
        (spec_text("2026-13-01"), "field 'last_review'"),
        (spec_text(TODAY).replace("risk: medium", "risk: extreme"), "field 'risk'"),
        (spec_text(TODAY).replace("risk: medium\n", ""), "field 'risk': required field"),
        (
            spec_text(TODAY).replace("risk: medium", "risk: medium\nreviewer: me"),
            "field 'reviewer': unknown",
        ),
    ],
)
def test_bad_front_matter_names_the_file_and_the_field(
    tmp_path: Path, text: str, message: str
) -> None:
    repo = spec_repo(tmp_path / "repo", TODAY)
    write_spec(repo, "docs/specs/0002-bad.md", text)
    with pytest.raises(SpecError, match=message) as caught:
        check_specs(repo, today=TODAY)
    assert caught.value.path == "docs/specs/0002-bad.md"


def test_bad_settings_name_the_table_field(tmp_path: Path) -> None:
    repo = spec_repo(tmp_path / "repo", TODAY)
    (repo / "pyproject.toml").write_text("[tool.orchestrator.spec-guard]\nmax-age-days = -1\n")
    with pytest.raises(SpecError, match=r"field 'tool\.orchestrator\.spec-guard\.max-age-days'"):
        check_specs(repo, today=TODAY)
