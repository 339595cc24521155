"""Canary scans: prove a secret value never reached a file or a command line.

    hits = scan_paths_for(CANARY, [runs_dir, out_dir, prefect_home, codex_home])
    assert not hits, hits

A secret is searched for as raw UTF-8, UTF-16-LE, hex, and standard and URL-safe
base64 (at each of the three byte alignments), so a value that was encoded on its way
to disk is found too. Files are read as bytes, in chunks, so binary files (a SQLite
database and its ``-wal`` journal included) are covered. A hit names the place and the
encoding, never the matched text, so it can be printed safely.
"""

from __future__ import annotations

import base64
import os
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType

CHUNK = 1 << 20
MIN_CANARY_LENGTH = 12
"""Shorter values would match by chance (and base64 needs a few full groups)."""


def needles(secret: str) -> dict[str, bytes]:
    """The byte patterns ``secret`` is searched as, by encoding name."""
    if len(secret) < MIN_CANARY_LENGTH:
        raise ValueError(f"a canary must be at least {MIN_CANARY_LENGTH} characters long")
    raw = secret.encode()
    found = {"utf-8": raw, "utf-16-le": secret.encode("utf-16-le"), "hex": raw.hex().encode()}
    for offset in range(3):
        # A secret at byte offset o of a larger text appears, base64-encoded, as the
        # encoding of raw[(-o) % 3:] cut to whole 3-byte groups.
        part = raw[offset:]
        part = part[: len(part) - len(part) % 3]
        found[f"base64+{offset}"] = base64.b64encode(part)
        found[f"base64url+{offset}"] = base64.urlsafe_b64encode(part)
    return found


def scan_paths_for(secret: str, paths: Iterable[Path]) -> list[str]:
    """Every place under ``paths`` (files, or folders scanned recursively) holding ``secret``.

    Missing paths are skipped (e.g. an absent ``~/.vault-token`` is the good case);
    symlinks are not followed; a file that cannot be read is reported as a hit, since
    it could not be cleared.

    Returns:
        ``"<path>: <encoding>"`` per hit; empty when the secret is nowhere.
    """
    patterns = needles(secret)
    hits: list[str] = []
    for file in _files(paths):
        try:
            found = _scan_file(file, patterns)
        except FileNotFoundError:
            continue  # removed while we looked (a temp file)
        except OSError as exc:
            hits.append(f"{file}: unreadable ({type(exc).__name__})")
            continue
        hits.extend(f"{file}: {encoding}" for encoding in found)
    return hits


def scan_cmdlines_for(secret: str, *, proc: Path = Path("/proc")) -> list[str]:
    """Every running process whose command line (``/proc/*/cmdline``) holds ``secret``.

    Returns:
        ``"pid <n> (<program>): <encoding>"`` per hit.
    """
    patterns = needles(secret)
    hits: list[str] = []
    for pid_dir in proc.iterdir():
        if not pid_dir.name.isdigit():
            continue
        try:
            cmdline = (pid_dir / "cmdline").read_bytes()
        except OSError:
            continue  # exited meanwhile, or not ours to read
        for encoding, pattern in patterns.items():
            if pattern in cmdline:
                program = cmdline.split(b"\0", 1)[0].decode(errors="replace")
                hits.append(f"pid {pid_dir.name} ({os.path.basename(program)}): {encoding}")
    return hits


class CmdlineWatch:
    """Sample every process's command line while a block runs, for short-lived processes.

    with CmdlineWatch(CANARY) as watch:
        run_the_pipeline()
    assert not watch.hits, watch.hits
    """

    def __init__(self, secret: str, *, interval: float = 0.02) -> None:
        needles(secret)  # refuse a short canary now, not in the thread
        self._secret = secret
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cmdline-watch", daemon=True)
        self._hits: set[str] = set()
        self._first_sample = threading.Event()

    @property
    def hits(self) -> list[str]:
        return sorted(self._hits)

    def _run(self) -> None:
        while True:
            self._hits.update(scan_cmdlines_for(self._secret))
            self._first_sample.set()
            if self._stop.wait(self._interval):
                break

    def __enter__(self) -> CmdlineWatch:
        """Start sampling; returns once the first sample is taken."""
        self._thread.start()
        if not self._first_sample.wait(timeout=10):
            raise TimeoutError("the command-line watch did not start")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def _files(paths: Iterable[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_symlink() or not path.exists():
            continue
        if path.is_file():
            yield path
            continue
        for root, dirs, names in os.walk(path, followlinks=False):
            dirs.sort()
            for name in sorted(names):
                file = Path(root, name)
                if file.is_file() and not file.is_symlink():
                    yield file


def _scan_file(file: Path, patterns: dict[str, bytes]) -> list[str]:
    """Encodings of ``patterns`` found in ``file``, read in overlapping chunks."""
    overlap = max(len(p) for p in patterns.values()) - 1
    found: set[str] = set()
    tail = b""
    with file.open("rb") as stream:
        while chunk := stream.read(CHUNK):
            window = tail + chunk
            found.update(name for name, p in patterns.items() if p in window)
            tail = window[-overlap:]
    return sorted(found)
