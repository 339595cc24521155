"""``orchestrator serve --database``: bad values are one clear error, and nothing starts."""

from __future__ import annotations

from pathlib import Path

from .conftest import Cli

SECRET = "s3cr3t-pass-word"


def test_serve_refuses_a_password_on_the_command_line_and_starts_nothing(
    cli: Cli, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    url = f"postgresql://prefect:{SECRET}@127.0.0.1:1/prefect"
    done = cli("serve", "--state-dir", str(state), "--database", url)
    assert done.returncode != 0
    assert "ORCHESTRATOR_PREFECT_DATABASE" in done.stderr + done.stdout
    assert SECRET not in done.stderr + done.stdout
    assert not state.exists()


def test_serve_refuses_an_unknown_database_and_starts_nothing(cli: Cli, tmp_path: Path) -> None:
    state = tmp_path / "state"
    done = cli("serve", "--state-dir", str(state), "--database", "mysql://h/db")
    assert done.returncode != 0
    assert "sqlite, postgres or a postgresql:// URL" in done.stderr + done.stdout
    assert not state.exists()
