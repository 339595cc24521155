from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

from orchestrator.gitops import git
from orchestrator.specguard import read_front_matter
from tests.cli.conftest import Cli
from tests.conftest import REPO_ROOT
from tests.helpers.specs import commit_all, spec_repo, spec_text, write_spec

TODAY = date(2026, 12, 1)
SPEC = "docs/specs/0001-widgets.md"


def test_a_fresh_spec_passes(cli: Cli, tmp_path: Path) -> None:
    repo = spec_repo(tmp_path / "repo", TODAY - timedelta(days=3))
    result = cli("spec-guard", "--today", str(TODAY), cwd=repo)
    assert result.returncode == 0, result.stderr
    assert "ok 1 active spec(s) checked" in result.stdout


def test_a_31_day_old_spec_fails_with_the_table(cli: Cli, tmp_path: Path) -> None:
    repo = spec_repo(tmp_path / "repo", TODAY - timedelta(days=31))
    result = cli("spec-guard", "--today", str(TODAY), cwd=repo)
    assert result.returncode == 1
    header = next(line for line in result.stdout.splitlines() if "file" in line)
    assert [cell.strip() for cell in header.split("┃")[1:4]] == ["file", "rule", "detail"]
    row = next(line for line in result.stdout.splitlines() if SPEC in line)
    assert "stale-review" in row
    assert "last reviewed 31 days ago (2026-10-31); the limit is 30" in row
    assert "1 finding(s)" in result.stderr


def test_code_changed_without_a_spec_fails_and_with_one_passes(cli: Cli, tmp_path: Path) -> None:
    repo = spec_repo(tmp_path / "repo", TODAY)
    git(repo, "switch", "-qc", "feature")
    (repo / "src" / "widgets.py").write_text("WIDGETS = 2\n")
    commit_all(repo, "more widgets")

    result = cli("spec-guard", "--base", "main", "--today", str(TODAY), "--json", cwd=repo)
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["findings"] == [
        {
            "file": "src/widgets.py",
            "rule": "code-without-spec",
            "detail": "changed since main with no spec file changed",
        }
    ]
    write_spec(repo, SPEC, spec_text(TODAY) + "- Two widgets.\n")
    commit_all(repo, "spec: two widgets")
    result = cli("spec-guard", "--base", "main", "--today", str(TODAY), "--repo", str(repo))
    assert result.returncode == 0, result.stdout + result.stderr


def test_bad_front_matter_exits_2_naming_file_and_field(cli: Cli, tmp_path: Path) -> None:
    repo = spec_repo(tmp_path / "repo", TODAY)
    write_spec(repo, SPEC, spec_text(TODAY).replace("risk: medium", "risk: extreme"))
    result = cli("spec-guard", "--today", str(TODAY), cwd=repo)
    assert result.returncode == 2
    assert f"{SPEC}: field 'risk'" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_bad_options_exit_2(cli: Cli, tmp_path: Path) -> None:
    repo = spec_repo(tmp_path / "repo", TODAY)
    bad_day = cli("spec-guard", "--today", "yesterday", cwd=repo)
    assert bad_day.returncode == 2
    assert "--today 'yesterday' is not a day" in bad_day.stderr
    bad_base = cli("spec-guard", "--base", "no-such-ref", cwd=repo)
    assert bad_base.returncode == 2
    assert "--base 'no-such-ref' is not a commit" in bad_base.stderr
    missing = cli("spec-guard", "docs/specs/none.md", cwd=repo)
    assert missing.returncode == 2
    assert "docs/specs/none.md: no such file or folder" in missing.stderr


def test_the_projects_own_spec_passes_now_and_fails_31_days_after_its_review(cli: Cli) -> None:
    spec = REPO_ROOT / "docs" / "specs" / "0001-orchestrator-architecture.md"
    reviewed = read_front_matter(spec).last_review
    assert reviewed is not None

    fresh = cli("spec-guard", "--today", str(reviewed), cwd=REPO_ROOT)
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    stale = cli("spec-guard", "--today", str(reviewed + timedelta(days=31)), cwd=REPO_ROOT)
    assert stale.returncode == 1
    assert "docs/specs/0001-orchestrator-architecture.md" in stale.stdout
    assert "last reviewed 31 days ago" in stale.stdout
