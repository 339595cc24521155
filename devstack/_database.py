"""Which database the stack's Prefect server runs on: SQLite, our PostgreSQL cluster, or a URL."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import SecretStr

from orchestrator.exceptions import InvalidInputError

DatabaseKind = Literal["sqlite", "postgres", "url"]
URL_SCHEMES = ("postgresql", "postgresql+asyncpg", "postgres")
DRIVER = "postgresql+asyncpg"
"""Prefect's PostgreSQL driver (asyncpg comes with prefect)."""


@dataclass(frozen=True)
class Database:
    """The Prefect server's database.

    Attributes:
        kind: ``sqlite`` (Prefect's default, under the Prefect home), ``postgres`` (a
            cluster the stack starts under its state folder) or ``url`` (a PostgreSQL
            server of yours).
        url: For ``url``: the connection URL, with the asyncpg driver; it may hold a
            password, so it is only ever put in the Prefect server's environment.
    """

    kind: DatabaseKind = "sqlite"
    url: SecretStr | None = None

    @property
    def shown(self) -> str:
        """What ``stack.json`` and ``orchestrator serve`` show: no password."""
        if self.url is None:
            return self.kind
        from sqlalchemy.engine import make_url

        return make_url(self.url.get_secret_value()).render_as_string(hide_password=True)


SQLITE = Database()


def parse_database(value: str) -> Database:
    """``sqlite``, ``postgres`` or a ``postgresql://`` URL (given the asyncpg driver).

    Raises:
        InvalidInputError: anything else, or a URL that does not parse. The message
            names only the URL's scheme, never the rest (it may hold a password).
    """
    text = value.strip()
    if text.lower() in ("sqlite", ""):
        return SQLITE
    if text.lower() in ("postgres", "postgresql"):
        return Database("postgres")
    scheme = text.partition("://")[0].lower() if "://" in text else ""
    if scheme not in URL_SCHEMES:
        shown = f"a {scheme}:// URL" if scheme else repr(text[:20])
        raise InvalidInputError(
            f"--database takes sqlite, postgres or a postgresql:// URL, not {shown}"
        )
    return Database("url", SecretStr(_with_driver(text)))


def url_has_password(value: str) -> bool:
    """Whether ``value`` is a URL that carries a password (which no command line may hold)."""
    if "://" not in value:
        return False
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return bool(make_url(value).password)
    except ArgumentError:
        return "@" in value


def _with_driver(text: str) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(text)
    except ArgumentError:
        raise InvalidInputError("--database: the postgresql:// URL does not parse") from None
    if not url.host or not url.database:
        raise InvalidInputError("--database: the postgresql:// URL needs a host and a database")
    return url.set(drivername=DRIVER).render_as_string(hide_password=False)
