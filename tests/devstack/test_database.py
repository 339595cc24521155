"""``--database`` and ``--max-runs``: what they take, what they refuse, what they default to."""

from __future__ import annotations

import os
import pwd
import socket
from pathlib import Path

import pytest

from devstack import (
    LOOPBACK,
    SQLITE,
    Database,
    default_max_runs,
    parse_database,
    postgres_bin,
    read_stack,
    spawn_postgres,
    url_has_password,
)
from devstack import _postgres as postgres_module
from orchestrator.exceptions import DevStackError, InvalidInputError
from tests.helpers.folders import reachable_folder

SECRET = "s3cr3t-pass-word"


@pytest.mark.parametrize("value", ["sqlite", "SQLite", " sqlite "])
def test_sqlite_is_the_default_database(value: str) -> None:
    assert parse_database(value) == SQLITE
    assert SQLITE.shown == "sqlite"


@pytest.mark.parametrize("value", ["postgres", "postgresql"])
def test_postgres_means_our_own_cluster(value: str) -> None:
    assert parse_database(value) == Database("postgres")


@pytest.mark.parametrize(
    "value",
    [
        f"postgresql://prefect:{SECRET}@db.internal:5432/prefect",
        f"postgres://prefect:{SECRET}@db.internal:5432/prefect",
        f"postgresql+asyncpg://prefect:{SECRET}@db.internal:5432/prefect",
    ],
)
def test_a_url_gets_the_asyncpg_driver_and_is_shown_without_its_password(value: str) -> None:
    database = parse_database(value)
    assert database.kind == "url" and database.url is not None
    expected = f"postgresql+asyncpg://prefect:{SECRET}@db.internal:5432/prefect"
    assert database.url.get_secret_value() == expected
    assert database.shown == "postgresql+asyncpg://prefect:***@db.internal:5432/prefect"
    assert SECRET not in repr(database)
    assert url_has_password(value)


@pytest.mark.parametrize(
    ("value", "named"),
    [
        (f"mysql://root:{SECRET}@h/db", "a mysql:// URL"),
        ("oracle", "'oracle'"),
        (f"sqlite+aiosqlite:///{SECRET}.db", "a sqlite+aiosqlite:// URL"),
        ("postgresql://host-only", "needs a host and a database"),
    ],
)
def test_anything_else_is_one_clear_error_that_does_not_echo_the_url(
    value: str, named: str
) -> None:
    with pytest.raises(InvalidInputError) as caught:
        parse_database(value)
    assert named in str(caught.value)
    assert SECRET not in str(caught.value)


def test_urls_without_a_password_may_go_on_the_command_line() -> None:
    assert not url_has_password("postgresql://prefect@db.internal/prefect")
    assert not url_has_password("postgres")


@pytest.mark.parametrize(
    ("cpus", "memory_gb", "expected"),
    [
        (2, 22, 4),  # the reference machine: its cores decide
        (16, 64, 32),
        (8, 1.5, 3),  # little memory: it decides
        (1, 0.5, 1),  # never below one run
    ],
)
def test_the_default_limit_is_what_cores_and_memory_both_hold(
    cpus: int, memory_gb: float, expected: int
) -> None:
    assert default_max_runs(cpus=cpus, memory=int(memory_gb * 2**30)) == expected


def test_the_default_limit_of_this_machine_is_at_least_one() -> None:
    assert default_max_runs() >= 1


def test_missing_postgresql_is_named_with_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(postgres_module, "BIN_GLOB", str(tmp_path / "none" / "*" / "bin"))
    with pytest.raises(DevStackError, match=r"PostgreSQL is not installed.*make system-postgres"):
        spawn_postgres(tmp_path / "state")
    assert not (tmp_path / "state" / "postgres").exists()


@pytest.mark.integration
def test_a_busy_port_is_refused_before_anything_starts(tmp_path: Path) -> None:
    postgres_bin()  # installed (make test installs it)
    with socket.socket() as busy:
        busy.bind((LOOPBACK, 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(DevStackError, match=f"port {port} on {LOOPBACK} is in use"):
            spawn_postgres(tmp_path / "state", port=port)
    assert not (tmp_path / "state" / "postgres").exists()
    assert read_stack(tmp_path / "state").services == []


@pytest.mark.integration
def test_a_state_folder_its_user_cannot_reach_is_refused(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.fail("run as root (as CI does): only then does PostgreSQL run as another user")
    with pytest.raises(DevStackError, match="'postgres', which cannot pass through"):
        spawn_postgres(tmp_path / "state")  # pytest's folders are 0700 root
    assert not (tmp_path / "state" / "postgres").exists()


@pytest.mark.integration
def test_initdb_failing_is_reported_with_its_own_words() -> None:
    with reachable_folder("initdb-fails-") as base:
        _initdb_fails(base / "state")


def _initdb_fails(state: Path) -> None:
    cluster = state / "postgres"
    cluster.mkdir(parents=True)
    (cluster / "not-a-cluster.txt").write_text("someone's file\n")  # initdb wants it empty
    if os.geteuid() == 0:  # as the stack would have made it: owned by the cluster's user
        user = pwd.getpwnam(postgres_module.SYSTEM_USER)
        for path in (cluster, cluster / "not-a-cluster.txt"):
            os.chown(path, user.pw_uid, user.pw_gid)
    with pytest.raises(DevStackError, match=r"(?s)initdb failed .*exists but is not empty"):
        spawn_postgres(state)
    assert (cluster / "not-a-cluster.txt").read_text() == "someone's file\n"
    assert read_stack(state).services == []
