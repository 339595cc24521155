"""The canary scanners find a secret in every form and place they promise, and nothing else."""

from __future__ import annotations

import base64
import gzip
import secrets
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers.canary import CmdlineWatch, scan_cmdlines_for, scan_paths_for


@pytest.fixture
def canary() -> str:
    return f"canary-{secrets.token_hex(12)}"


def test_clean_tree_has_no_hits(tmp_path: Path, canary: str) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "log.txt").write_text("nothing to see\n" * 1000)
    (tmp_path / "bin").write_bytes(bytes(range(256)) * 100)

    assert scan_paths_for(canary, [tmp_path, tmp_path / "missing"]) == []


@pytest.mark.parametrize(
    ("encode", "encoding"),
    [
        (lambda s: f"prefix {s} suffix".encode(), "utf-8"),
        (lambda s: f"x{s}".encode("utf-16-le"), "utf-16-le"),
        (lambda s: s.encode().hex().encode(), "hex"),
        (lambda s: base64.b64encode(f"a:{s}".encode()), "base64+1"),
        (lambda s: base64.b64encode(f"ab:{s}".encode()), "base64+0"),
        (lambda s: base64.urlsafe_b64encode(f"{s}".encode()), "base64url+0"),
        (lambda s: base64.b64encode(f"abcd{s}".encode()), "base64+2"),
    ],
)
def test_finds_each_encoding(
    tmp_path: Path, canary: str, encode: Callable[[str], bytes], encoding: str
) -> None:
    nested = tmp_path / "deep" / "er"
    nested.mkdir(parents=True)
    (nested / "file.bin").write_bytes(b"\x00\xff" + encode(canary) + b"\x00")

    hits = scan_paths_for(canary, [tmp_path])

    assert f"{nested / 'file.bin'}: {encoding}" in hits
    assert all(canary not in hit for hit in hits)


def test_finds_a_value_across_chunk_boundaries(tmp_path: Path, canary: str) -> None:
    from tests.helpers import canary as module

    data = b"x" * (module.CHUNK - 5) + canary.encode() + b"y" * 10
    (tmp_path / "big").write_bytes(data)

    assert scan_paths_for(canary, [tmp_path / "big"]) == [f"{tmp_path / 'big'}: utf-8"]


def test_finds_a_value_in_a_sqlite_database(tmp_path: Path, canary: str) -> None:
    db = tmp_path / "prefect.db"
    with sqlite3.connect(db) as connection:
        connection.execute("create table block_document (id integer primary key, data text)")
        row = (f'{{"token": "{canary}"}}',)
        connection.execute("insert into block_document (data) values (?)", row)
    connection.close()

    assert any(hit.startswith(str(db)) for hit in scan_paths_for(canary, [tmp_path]))


def test_compressed_data_is_out_of_scope(tmp_path: Path, canary: str) -> None:
    """Documented limit: compressed files are not unpacked (none are written by a run)."""
    (tmp_path / "x.gz").write_bytes(gzip.compress(canary.encode() * 3))

    assert scan_paths_for(canary, [tmp_path]) == []


def test_symlinks_are_not_followed(tmp_path: Path, canary: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(canary)
    scanned = tmp_path / "scanned"
    scanned.mkdir()
    (scanned / "link").symlink_to(outside / "secret.txt")

    assert scan_paths_for(canary, [scanned]) == []


def test_rejects_a_short_canary(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least"):
        scan_paths_for("short", [tmp_path])


def test_finds_a_running_process_by_its_command_line(canary: str) -> None:
    script = "import sys; print('up', flush=True); sys.stdin.read()"
    process = subprocess.Popen(
        [sys.executable, "-c", script, canary],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        # Right after exec a process's cmdline can read empty for a moment: wait till it runs.
        assert process.stdout is not None and process.stdout.readline() == b"up\n"
        hits = scan_cmdlines_for(canary)
    finally:
        process.communicate(b"", timeout=10)

    assert hits == [f"pid {process.pid} ({Path(sys.executable).name}): utf-8"]
    assert scan_cmdlines_for(canary) == []


def test_watch_sees_a_short_lived_process(canary: str) -> None:
    with CmdlineWatch(canary) as watch:
        subprocess.run([sys.executable, "-c", "import time; time.sleep(0.3)", canary], check=True)

    assert len(watch.hits) == 1
    assert watch.hits[0].endswith("utf-8")


def test_watch_without_the_secret_has_no_hits(canary: str) -> None:
    with CmdlineWatch(canary) as watch:
        subprocess.run([sys.executable, "-c", "pass"], check=True)

    assert watch.hits == []
