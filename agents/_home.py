"""A private ``CODEX_HOME`` for one server: its ``config.toml`` generated from settings.

codex reads its settings only from ``$CODEX_HOME/config.toml`` (``-c`` flags of
``mcp-server`` are ignored), so every session writes its own. The directory is private
(0700), never under the system temp dir (codex then cannot place its sandbox helper
and every sandboxed command fails), and removed when the session ends. Its ``tmp``
folder is the agent's own TMPDIR, the one writable folder outside the workspace: the
sandbox excludes /tmp and the inherited TMPDIR. No secret is
ever written here: an API key reaches codex through the process environment.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from orchestrator.exceptions import InvalidInputError
from orchestrator.processes import is_same_process, start_ticks
from schemas import CodexServerConfig

PROVIDER_ID = "orchestrator"
"""Key of our provider table: never a built-in id, which would silently win over ours."""

CATALOG_FILE = "model-catalog.json"
_OWNER = re.compile(r"codex-home-(?P<pid>\d+)-(?P<ticks>\d+)-[0-9a-f]+")
DEFAULT_PARENT = Path("~/.cache/codex-orchestrator")


@contextmanager
def private_codex_home(config: CodexServerConfig, *, path: Path | None) -> Iterator[Path]:
    """A CODEX_HOME with ``config.toml`` (and model catalog) for ``config``.

    ``path`` is used as is (created if missing, kept afterwards if it existed);
    without it a fresh ``~/.cache/codex-orchestrator/codex-home-<owner>-<random>`` is
    made and removed on exit, and homes left by processes that died without cleaning
    up (SIGKILL) are removed first.

    Raises:
        InvalidInputError: ``path`` lies under the system temp directory.
    """
    if path is None:
        sweep_orphaned_homes(DEFAULT_PARENT.expanduser())
    home = (path or DEFAULT_PARENT.expanduser() / _default_name()).absolute()
    check_not_temp(home)
    created = not home.exists()
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    home.chmod(0o700)
    tmp = private_tmp(home)
    try:
        shutil.rmtree(tmp, ignore_errors=True)  # nothing left by an earlier session
        tmp.mkdir(mode=0o700)
        write_config(home, config)
        yield home
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if created:
            shutil.rmtree(home, ignore_errors=True)


def private_tmp(home: Path) -> Path:
    """The agent's own temporary folder (its ``TMPDIR``), inside its CODEX_HOME.

    The only folder outside the workspace the sandbox lets the agent write: /tmp and
    the inherited TMPDIR are excluded, because /tmp is shared by every run's agents and
    may hold a target repository's git folder (hooks that our own commits would run).
    """
    return home / "tmp"


def _default_name() -> str:
    """``codex-home-<pid>-<start ticks>-<random>``: names its owner, so an orphan is known."""
    pid = os.getpid()
    return f"codex-home-{pid}-{start_ticks(pid)}-{secrets.token_hex(4)}"


def sweep_orphaned_homes(parent: Path) -> list[Path]:
    """Remove default homes whose owner process is gone; returns what was removed."""
    removed = []
    for home in parent.glob("codex-home-*-*-*"):
        owner = _OWNER.fullmatch(home.name)
        if owner and not is_same_process(int(owner["pid"]), int(owner["ticks"])):
            shutil.rmtree(home, ignore_errors=True)
            removed.append(home)
    return removed


def temp_dir_above(path: Path) -> Path | None:
    """/tmp or the system temp dir when ``path`` lies in it (symlinks resolved), else None."""
    resolved = Path(os.path.realpath(path))
    for temp in {Path("/tmp"), Path(os.path.realpath(tempfile.gettempdir()))}:
        if resolved == temp or temp in resolved.parents:
            return temp
    return None


def check_not_temp(home: Path) -> None:
    """Refuse a CODEX_HOME under /tmp or the temp dir: codex's sandbox breaks there."""
    temp = temp_dir_above(home)
    if temp is not None:
        raise InvalidInputError(
            f"CODEX_HOME {home} is under {temp}: codex cannot install its sandbox "
            "helper there; use a directory elsewhere (default ~/.cache/codex-orchestrator)"
        )


def write_config(home: Path, config: CodexServerConfig) -> Path:
    """Write ``config.toml`` (and the model catalog, if any) into ``home``."""
    catalog = config.catalog_entries()
    catalog_path = home / CATALOG_FILE
    if catalog:
        models = [entry.to_model_info() for entry in catalog]
        _write_private(catalog_path, json.dumps({"models": models}, indent=1))
    target = home / "config.toml"
    text = render_config(
        config, catalog=catalog_path if catalog else None, tmp=private_tmp(home).absolute()
    )
    _write_private(target, text)
    return target


def render_config(
    config: CodexServerConfig, *, catalog: Path | None = None, tmp: Path | None = None
) -> str:
    """The ``config.toml`` text for ``config``; ``tmp``: the agent's private TMPDIR."""
    provider = config.provider
    top: dict[str, Any] = {
        "model": config.model,
        "model_provider": PROVIDER_ID,
        "approval_policy": config.approval_policy,
        "sandbox_mode": config.sandbox,
    }
    if catalog is not None:
        top["model_catalog_json"] = str(catalog)
    if config.reasoning_effort is not None:
        top["model_reasoning_effort"] = config.reasoning_effort
    provider_table: dict[str, Any] = {
        "name": provider.name,
        "base_url": provider.base_url,
        "wire_api": provider.wire_api,
        "request_max_retries": provider.request_max_retries,
        "stream_max_retries": provider.stream_max_retries,
    }
    if provider.env_key is not None:
        provider_table["env_key"] = provider.env_key
    shell_env: dict[str, Any] = {"inherit": "all", "ignore_default_excludes": False}
    if provider.env_key is not None:
        shell_env["exclude"] = [provider.env_key]
    sections = [
        _table(None, top),
        _table(f"model_providers.{PROVIDER_ID}", provider_table),
        _table("shell_environment_policy", shell_env),
        # workspace-write would also open /tmp and $TMPDIR to every command: shut both,
        # and open only the agent's private temporary folder.
        _table(
            "sandbox_workspace_write",
            {
                "exclude_slash_tmp": True,
                "exclude_tmpdir_env_var": True,
                "writable_roots": [str(tmp)] if tmp else [],
            },
        ),
        _table("history", {"persistence": "none"}),
        # No shell snapshot: it runs the user's login shell outside any sandbox when a
        # thread starts (rc files and all) and would outlive a killed server.
        _table("features", {"shell_snapshot": False}),
        _table("analytics", {"enabled": False}),
    ]
    return "\n".join(sections)


def _table(name: str | None, values: dict[str, Any]) -> str:
    lines = [f"[{name}]"] if name else []
    lines += [f"{key} = {_toml_value(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    # JSON strings, numbers, booleans and arrays of them are valid TOML values.
    if isinstance(value, bool | int | float | str) or isinstance(value, list):
        return json.dumps(value, ensure_ascii=True)
    raise TypeError(f"cannot write {type(value).__name__} to config.toml")


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
