from __future__ import annotations

import json
from pathlib import Path

from orchestrator.settings import Settings
from orchestrator.workspace import Workspace
from tests.cli.conftest import Cli
from tests.conftest import REPO_ROOT
from tests.helpers.library import entry_data, record_use, write_yaml


def test_add_list_show_and_bump_through_the_cli(cli: Cli, tmp_path: Path) -> None:
    index = tmp_path / "home" / "library" / "index.yaml"
    first = write_yaml(tmp_path / "no-print.yaml", entry_data())
    added = cli("library", "add", str(first))
    assert added.returncode == 0, added.stderr
    assert f"added no-print@1.2.0 to {index}" in added.stdout

    before = index.read_bytes()
    same = write_yaml(tmp_path / "same.yaml", entry_data(run={"args": ["--select", "T"]}))
    unbumped = cli("library", "bump", str(same))
    assert unbumped.returncode == 2
    assert "no-print@1.2.0 is already recorded; versions are immutable" in unbumped.stderr
    patch = write_yaml(
        tmp_path / "patch.yaml", entry_data(version="1.2.1", run={"args": ["--select", "T"]})
    )
    too_small = cli("library", "bump", str(patch))
    assert too_small.returncode == 2
    assert "-> 1.2.1 is a patch bump; this change needs at least a minor bump (1.3.0)" in (
        too_small.stderr
    )
    assert index.read_bytes() == before

    bumped_file = write_yaml(
        tmp_path / "minor.yaml", entry_data(version="1.3.0", run={"args": ["--select", "T"]})
    )
    bumped = cli("library", "bump", str(bumped_file))
    assert bumped.returncode == 0, bumped.stderr
    assert "bumped no-print@1.2.0 -> 1.3.0 (needed: minor)" in bumped.stdout

    listed = cli("library", "list", "--all", "--json")
    assert [(e["name"], e["version"]) for e in json.loads(listed.stdout)] == [
        ("no-print", "1.2.0"),
        ("no-print", "1.3.0"),
    ]
    table = cli("library", "list", "--tag", "hygiene")
    assert "no-print" in table.stdout and "1.3.0" in table.stdout and "1.2.0" not in table.stdout
    shown = cli("library", "show", "no-print@~1.2", "--json")
    assert json.loads(shown.stdout)["version"] == "1.2.0"
    missing = cli("library", "show", "no-print@^2")
    assert missing.returncode == 2
    assert "no version of 'no-print' matches '^2' (recorded: 1.2.0, 1.3.0)" in missing.stderr


def test_a_bad_entry_file_exits_2_naming_the_field(cli: Cli, tmp_path: Path) -> None:
    bad = write_yaml(tmp_path / "bad.yaml", entry_data(tool="prettier"))
    result = cli("library", "add", str(bad))
    assert result.returncode == 2
    assert f"{bad}: field 'tool'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "home" / "library").exists()


def test_the_index_comes_from_the_environment_or_the_option(cli: Cli, tmp_path: Path) -> None:
    entry = write_yaml(tmp_path / "no-print.yaml", entry_data())
    prod = tmp_path / "prod" / "index.yaml"
    result = cli("library", "add", str(entry), env={"ORCHESTRATOR_LIBRARY_INDEX": str(prod)})
    assert result.returncode == 0, result.stderr
    assert prod.is_file()
    assert "no-print" in cli("library", "list", "--index", str(prod)).stdout
    assert "no entries in" in cli("library", "list").stdout


def test_replace_is_refused_once_a_run_recorded_the_version(cli: Cli, tmp_path: Path) -> None:
    entry = write_yaml(tmp_path / "no-print.yaml", entry_data())
    assert cli("library", "add", str(entry)).returncode == 0
    changed = write_yaml(tmp_path / "changed.yaml", entry_data(description="In place."))
    assert cli("library", "add", str(changed), "--replace").returncode == 0

    record_use(Workspace.open(Settings(home=tmp_path / "home")), "no-print@1.2.0")
    result = cli("library", "add", str(entry), "--replace")
    assert result.returncode == 2
    assert "no-print@1.2.0 was used by a run" in result.stderr


def test_the_projects_library_lists_its_entries(cli: Cli) -> None:
    result = cli("library", "list", "--json", env={"ORCHESTRATOR_HOME": str(REPO_ROOT)})
    assert result.returncode == 0, result.stderr
    assert "no-print" in [entry["name"] for entry in json.loads(result.stdout)]
