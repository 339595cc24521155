"""The private CODEX_HOME and the config.toml generated from settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from agents._home import (
    check_not_temp,
    private_codex_home,
    render_config,
    sweep_orphaned_homes,
    write_config,
)
from agents._launch import server_environment
from orchestrator.exceptions import InvalidInputError
from orchestrator.processes import start_ticks
from schemas import CodexServerConfig, ModelCatalogEntry, schema_errors


def config(**fields: object) -> CodexServerConfig:
    return CodexServerConfig.model_validate(
        {"provider": {"base_url": "http://127.0.0.1:8123/v1/"}} | fields
    )


def test_the_config_names_provider_model_sandbox_and_approvals() -> None:
    parsed = tomllib.loads(render_config(config(sandbox="read-only", approval_policy="never")))
    assert parsed["model"] == "replay"
    assert parsed["model_provider"] == "orchestrator"
    assert (parsed["sandbox_mode"], parsed["approval_policy"]) == ("read-only", "never")
    provider = parsed["model_providers"]["orchestrator"]
    assert provider == {
        "name": "replay",
        "base_url": "http://127.0.0.1:8123/v1",
        "wire_api": "responses",
        "request_max_retries": 0,
        "stream_max_retries": 0,
    }
    assert parsed["analytics"] == {"enabled": False}
    assert parsed["features"] == {"shell_snapshot": False}


def test_a_real_provider_names_its_key_variable_and_hides_it_from_commands() -> None:
    real = CodexServerConfig.model_validate(
        {
            "provider": {
                "name": "openai",
                "base_url": "https://api.openai.com/v1",
                "env_key": "OPENAI_API_KEY",
                "request_max_retries": 4,
            },
            "model": "gpt-5.4",
            "reasoning_effort": "medium",
        }
    )
    parsed = tomllib.loads(render_config(real))
    assert parsed["model_providers"]["orchestrator"]["env_key"] == "OPENAI_API_KEY"
    assert parsed["shell_environment_policy"]["exclude"] == ["OPENAI_API_KEY"]
    assert parsed["model_reasoning_effort"] == "medium"
    assert real.catalog_entries() == []  # a model codex knows needs no catalog


def test_the_replay_model_gets_a_catalog_entry_offering_apply_patch(tmp_path: Path) -> None:
    write_config(tmp_path, config())
    parsed = tomllib.loads((tmp_path / "config.toml").read_text())
    catalog = json.loads(Path(parsed["model_catalog_json"]).read_text())
    [model] = catalog["models"]
    assert (model["slug"], model["apply_patch_tool_type"]) == ("replay", "freeform")
    assert model["prefer_websockets"] is False
    assert (tmp_path / "config.toml").stat().st_mode & 0o777 == 0o600


def test_catalog_overrides_win() -> None:
    entry = ModelCatalogEntry(slug="m", apply_patch=False, overrides={"priority": 1})
    info = entry.to_model_info()
    assert "apply_patch_tool_type" not in info and info["priority"] == 1


def test_the_home_is_private_and_removed() -> None:
    with private_codex_home(config(), path=None) as home:
        assert home.stat().st_mode & 0o777 == 0o700
        assert (home / "config.toml").exists()
        assert not str(home).startswith("/tmp/")
    assert not home.exists()


def test_the_sandbox_shuts_tmp_and_opens_only_a_private_tmpdir() -> None:
    with private_codex_home(config(), path=None) as home:
        parsed = tomllib.loads((home / "config.toml").read_text())
        tmp = home / "tmp"
        assert tmp.is_dir() and tmp.stat().st_mode & 0o777 == 0o700
        assert server_environment(home, {"TMPDIR": "/tmp"})["TMPDIR"] == str(tmp)
    assert parsed["sandbox_workspace_write"] == {
        "exclude_slash_tmp": True,
        "exclude_tmpdir_env_var": True,
        "writable_roots": [str(tmp)],
    }


def test_a_given_home_that_existed_is_kept_but_not_its_tmp(tmp_path: Path) -> None:
    home = Path.home() / ".cache" / "codex-orchestrator" / f"kept-{tmp_path.name}"
    home.mkdir(parents=True)
    try:
        (home / "tmp").mkdir()
        (home / "tmp" / "left-by-an-earlier-session").write_text("x")
        with private_codex_home(config(), path=home):
            assert list((home / "tmp").iterdir()) == []  # a fresh one
            (home / "tmp" / "written").write_text("x")
        assert (home / "config.toml").exists()
        assert not (home / "tmp").exists()
    finally:
        for file in home.iterdir():
            file.unlink()
        home.rmdir()


@pytest.mark.parametrize("path", ["/tmp/codex-home", "/tmp"])
def test_a_home_under_tmp_is_refused(path: str) -> None:
    with pytest.raises(InvalidInputError, match="under /tmp"):
        check_not_temp(Path(path))


def test_the_settings_validate_and_export_as_a_document() -> None:
    with pytest.raises(ValueError, match="http"):
        config(provider={"base_url": "ftp://x"})
    with pytest.raises(ValueError, match="env_key"):
        config(provider={"base_url": "http://x", "env_key": "lower-case"})
    data = config().model_dump(mode="json")
    assert schema_errors("codex-server-config", data) is None


def test_homes_left_by_dead_processes_are_swept_and_live_ones_kept(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_pid = int(dead.stdout)
    me = os.getpid()
    orphan = tmp_path / f"codex-home-{dead_pid}-12345-abcd0123"
    recycled = tmp_path / f"codex-home-{me}-{start_ticks(me) + 1}-abcd0124"  # pid reused
    live = tmp_path / f"codex-home-{me}-{start_ticks(me)}-abcd0125"
    other = tmp_path / "codex-home-0123456789ab"  # no owner in the name: not ours to judge
    for home in (orphan, recycled, live, other):
        (home / "sessions").mkdir(parents=True)

    removed = sweep_orphaned_homes(tmp_path)

    assert sorted(removed) == sorted([orphan, recycled])
    assert live.exists() and other.exists()
