"""The dev Vault's demo secrets, AppRole names and the one secret file it writes."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from orchestrator.credentials import CLOUD_TOKEN, DEFAULT_SECRET_ID_ENV, OPENAI_API_KEY, SECRET_KEYS
from schemas import check_safe_id

VALUE_ENV_PREFIX = "ORCHESTRATOR_DEV_VAULT_"
"""``ORCHESTRATOR_DEV_VAULT_<KEY>`` sets the demo value of a secret key instead of a random one."""


@dataclass(frozen=True)
class AppRoleLogin:
    """One environment's AppRole credentials (the secret_id stays a SecretStr)."""

    role_id: str
    secret_id: SecretStr


def policy_name(env: str) -> str:
    """The name of ``env``'s policy and AppRole role."""
    return f"codex-orchestrator-{check_safe_id(env)}"


def secret_id_file(directory: Path, env: str) -> Path:
    """The mode-0600 file holding ``export ORCHESTRATOR_VAULT_SECRET_ID=...`` for ``env``."""
    return directory / f"approle-{check_safe_id(env)}.env"


def demo_secrets(env: str, *, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Demo values for every key the orchestrator reads: random, unless ``environ`` has one.

    ``ORCHESTRATOR_DEV_VAULT_CLOUD_TOKEN`` in ``environ`` sets ``cloud_token`` (so
    ``make serve`` can give the same token to the reference Runs API server), and so on
    for each key in :data:`~orchestrator.credentials.SECRET_KEYS`.
    """
    values = {
        CLOUD_TOKEN: f"dev-cloud-{env}-{secrets.token_urlsafe(18)}",
        OPENAI_API_KEY: f"dev-model-{env}-{secrets.token_urlsafe(18)}",
    }
    for key in SECRET_KEYS:
        given = (environ or {}).get(VALUE_ENV_PREFIX + key.upper())
        if given:
            values[key] = given
    return values


def given_values(environ: Mapping[str, str]) -> dict[str, str]:
    """The ``ORCHESTRATOR_DEV_VAULT_*`` variables of ``environ`` (for a child's environment)."""
    return {k: v for k, v in environ.items() if k.startswith(VALUE_ENV_PREFIX)}


def write_secret_id(path: Path, login: AppRoleLogin) -> None:
    """Write ``export ORCHESTRATOR_VAULT_SECRET_ID=...`` to a new mode-0600 file."""
    write_private(path, f"export {DEFAULT_SECRET_ID_ENV}={login.secret_id.get_secret_value()}\n")


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` with a new file only its owner can read (created with mode 0600)."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(text)
