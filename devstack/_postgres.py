"""A PostgreSQL cluster for the stack's Prefect server: Debian's postgresql, under the state folder.

The cluster lives in ``<state folder>/postgres`` and listens on a free loopback port
only (no Unix socket). Its one role and database are both ``prefect``; the role's
password is new at every start, set in single-user mode before the server starts (so
nothing can log in with an old one), and handed to the Prefect server in its
environment only: the URL in ``stack.json`` and in messages has no password.

PostgreSQL refuses to run as root. Run as root, every PostgreSQL program here runs as
the system user that Debian's ``postgresql`` package creates for this, ``postgres``
(``setpriv --reuid --regid --init-groups``); the cluster folder is owned by it, and
the state folder (mode 0710) lets that user's group through to it and no further: the
secret_id file stays 0600 root. Run as any other user, PostgreSQL runs as that user.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from orchestrator.exceptions import DevStackError
from orchestrator.supervisor import Supervised, clean_environ

from ._parts import Starting, spawn_part
from ._records import LOG_DIR, state_folder
from ._uvicorn import LOOPBACK, check_port_free, free_port

SERVICE = "postgres"
CLUSTER_DIR = "postgres"
DATABASE = "prefect"
ROLE = "prefect"
SYSTEM_USER = "postgres"
"""The user Debian's postgresql package creates to run PostgreSQL; ours runs as it under root."""
BIN_GLOB = "/usr/lib/postgresql/*/bin"
INSTALL_HINT = "install Debian's postgresql ('make system-postgres', or apt-get install postgresql)"
START_TIMEOUT = 60.0
SETTINGS = {
    "listen_addresses": LOOPBACK,
    "unix_socket_directories": "",
    # A lost last commit after a crash is harmless in a dev stack; a flush per commit
    # on a busy disk is not.
    "synchronous_commit": "off",
    "max_connections": "200",
}
HBA = f"host {DATABASE} {ROLE} {LOOPBACK}/32 scram-sha-256\n"
"""Who may connect: the ``prefect`` role, over loopback, with its password; nobody else."""


@dataclass(frozen=True)
class Postgres:
    """A starting PostgreSQL server and how to reach it."""

    starting: Starting
    port: int
    password: SecretStr

    @property
    def public_url(self) -> str:
        """The database's URL without its password (for ``stack.json`` and messages)."""
        return f"postgresql://{ROLE}@{LOOPBACK}:{self.port}/{DATABASE}"

    @property
    def url(self) -> SecretStr:
        """The URL the Prefect server connects with (asyncpg driver, with the password)."""
        secret = self.password.get_secret_value()
        return SecretStr(f"postgresql+asyncpg://{ROLE}:{secret}@{LOOPBACK}:{self.port}/{DATABASE}")


def postgres_bin() -> Path:
    """The newest ``/usr/lib/postgresql/<version>/bin`` that holds ``initdb`` and ``postgres``.

    Raises:
        DevStackError: PostgreSQL is not installed.
    """
    found = [
        Path(folder)
        for folder in glob.glob(BIN_GLOB)
        if (Path(folder) / "initdb").is_file() and (Path(folder) / "postgres").is_file()
    ]
    if not found:
        message = f"PostgreSQL is not installed (no {BIN_GLOB}/initdb): {INSTALL_HINT}"
        raise DevStackError(message, service=SERVICE)
    return max(found, key=lambda folder: _version_key(folder.parent.name))


def spawn_postgres(
    state_dir: Path, *, port: int = 0, timeout: float = START_TIMEOUT, bin_dir: Path | None = None
) -> Postgres:
    """Create the cluster when it is new, set a fresh password, start the server detached.

    Args:
        state_dir: The stack's state folder; the cluster is its ``postgres/``.
        port: The loopback port (0: a free one).
        timeout: How long :meth:`Starting.wait` waits for it to accept connections.
        bin_dir: Where ``initdb`` and ``postgres`` are (default: :func:`postgres_bin`).

    Raises:
        DevStackError: PostgreSQL is missing, its user is missing, the port is taken,
            or ``initdb`` or setting the password failed.
    """
    state_dir = state_folder(state_dir)
    bin_dir = bin_dir or postgres_bin()
    port = port or free_port()
    check_port_free(port, service=SERVICE)
    user = _cluster_user()
    cluster = _prepare_folders(state_dir, user)
    if not (cluster / "PG_VERSION").is_file():
        _initdb(bin_dir, cluster, user, log=state_dir / LOG_DIR / "initdb.log")
    password = SecretStr(secrets.token_urlsafe(24))  # URL-safe: no quoting in the URL or SQL
    _set_password(bin_dir, cluster, user, password)
    command = [str(bin_dir / "postgres"), "-D", str(cluster), "-p", str(port)]
    for name, value in SETTINGS.items():
        command += ["-c", f"{name}={value}"]

    def ready(process: Supervised) -> str | None:
        return _accepting(cluster, port, pid=process.pid)

    starting = spawn_part(
        SERVICE,
        _as_user(user, command),
        state_dir=state_dir,
        env=_pg_environ(),
        ready=ready,
        timeout=timeout,
        cwd=cluster,
    )
    return Postgres(starting=starting, port=port, password=password)


def _accepting(cluster: Path, port: int, *, pid: int) -> str | None:
    """The URL once ``postmaster.pid`` says "ready" (PostgreSQL >= 10 writes its status there).

    Only the file of server ``pid``: one a killed server left behind says "ready" too.
    """
    try:
        lines = (cluster / "postmaster.pid").read_text(encoding="utf-8").splitlines()
    except (FileNotFoundError, PermissionError):
        return None
    if len(lines) >= 8 and lines[0].strip() == str(pid) and lines[7].strip() == "ready":
        return f"postgresql://{ROLE}@{LOOPBACK}:{port}/{DATABASE}"
    return None


@dataclass(frozen=True)
class _User:
    """Who PostgreSQL runs as: ``None`` ids mean "as we are" (we are not root)."""

    uid: int | None = None
    gid: int | None = None
    name: str = ""


def _cluster_user() -> _User:
    if os.geteuid() != 0:
        return _User()
    try:
        entry = pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        raise DevStackError(
            f"running as root, PostgreSQL must run as the system user {SYSTEM_USER!r}, which "
            f"does not exist: {INSTALL_HINT} (its package creates the user)",
            service=SERVICE,
        ) from None
    return _User(entry.pw_uid, entry.pw_gid, SYSTEM_USER)


def _as_user(user: _User, command: list[str]) -> list[str]:
    """``command`` run as ``user`` (``setpriv`` execs it, keeping the PID we record)."""
    if user.uid is None:
        return command
    setpriv = shutil.which("setpriv") or "setpriv"
    ids = [f"--reuid={user.uid}", f"--regid={user.gid}", "--init-groups"]
    return [setpriv, *ids, "--", *command]


def _prepare_folders(state_dir: Path, user: _User) -> Path:
    """The cluster folder, owned by ``user``; the state folder lets only its group through."""
    cluster = state_dir / CLUSTER_DIR
    if user.uid is None or user.gid is None:
        cluster.mkdir(mode=0o700, exist_ok=True)
        return cluster
    _check_reachable(state_dir.parent, user)
    cluster.mkdir(mode=0o700, exist_ok=True)
    os.chown(cluster, user.uid, user.gid)
    os.chown(state_dir, -1, user.gid)
    os.chmod(state_dir, 0o710)
    return cluster


def _check_reachable(folder: Path, user: _User) -> None:
    """``user`` can pass through every folder down to ``folder`` (asked as that user).

    Raises:
        DevStackError: it cannot (e.g. the state folder is under a 0700 home or /tmp folder).
    """
    done = subprocess.run(
        _as_user(user, ["test", "-x", str(folder)]), capture_output=True, timeout=30, check=False
    )
    if done.returncode != 0:
        raise DevStackError(
            f"PostgreSQL runs as the user {user.name!r}, which cannot pass through {folder}: "
            "every folder above the state folder must let it through (o+x); choose a state "
            "folder elsewhere with --state-dir",
            service=SERVICE,
        )


def _initdb(bin_dir: Path, cluster: Path, user: _User, *, log: Path) -> None:
    command = [str(bin_dir / "initdb"), "-D", str(cluster), "-U", ROLE, "-E", "UTF8"]
    # No password login until ours is set; the hba file below replaces initdb's.
    command += ["--locale=C.UTF-8", "--auth-local=peer", "--auth-host=reject", "--no-instructions"]
    log.parent.mkdir(exist_ok=True)
    with open(log, "wb") as out:
        done = subprocess.run(
            _as_user(user, command), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            env=_pg_environ(), cwd=cluster, timeout=120, check=False,
        )  # fmt: skip
    if done.returncode != 0:  # initdb removes what it made itself; the rest is not ours
        text = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-5:]
        raise DevStackError(
            f"initdb failed (exit code {done.returncode}) for {cluster}; {log} ends:\n"
            + "\n".join(text),
            service=SERVICE,
        )
    hba = cluster / "pg_hba.conf"
    hba.write_text(HBA, encoding="utf-8")
    if user.uid is not None and user.gid is not None:
        os.chown(hba, user.uid, user.gid)
    try:
        _single_user(bin_dir, cluster, user, f"CREATE DATABASE {DATABASE}\n", doing="create "
                     "the database")  # fmt: skip
    except DevStackError:
        shutil.rmtree(cluster, ignore_errors=True)  # so the next start makes it anew
        raise


def _set_password(bin_dir: Path, cluster: Path, user: _User, password: SecretStr) -> None:
    """Set the role's password in single-user mode (nothing can log in meanwhile)."""
    sql = f"ALTER ROLE {ROLE} PASSWORD '{password.get_secret_value()}'\n"
    _single_user(bin_dir, cluster, user, sql, doing="set the password of its role")


def _single_user(bin_dir: Path, cluster: Path, user: _User, sql: str, *, doing: str) -> None:
    """Run ``sql`` (one statement a line) in single-user mode on standard input.

    Never on a command line; the output is dropped unread, because an error line quotes
    its statement (a password included).

    Raises:
        DevStackError: a statement failed, or the cluster is in use by a running server.
    """
    command = [str(bin_dir / "postgres"), "--single", "-D", str(cluster), "postgres"]
    done = subprocess.run(
        _as_user(user, command), input=sql.encode(), capture_output=True,
        env=_pg_environ(), cwd=cluster, timeout=120, check=False,
    )  # fmt: skip
    if done.returncode != 0 or b"ERROR:" in done.stdout + done.stderr:
        raise DevStackError(
            f"could not {doing} in {cluster} (single-user mode, exit code {done.returncode}); "
            "is a server of another stack running on this cluster?",
            service=SERVICE,
        )


def _pg_environ() -> dict[str, str]:
    return clean_environ({"LC_ALL": "C.UTF-8"})


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())
