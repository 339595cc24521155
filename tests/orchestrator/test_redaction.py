from __future__ import annotations

import logging
from pathlib import Path

import pytest

from orchestrator.redaction import Redactor, install_log_redaction
from orchestrator.workspace import Workspace
from schemas import ErrorRecord, utc_now
from tests.conftest import sample_manifest

CANARY = "canary-5f1c9e7a2b"


def test_registered_values_and_token_shapes_are_replaced() -> None:
    redactor = Redactor()
    redactor.register(CANARY, "ab")  # too short to register: would shred text

    text = (
        f"value={CANARY} key=sk-proj-{'x' * 30} vault=hvs.{'A' * 30} "
        f"gh=ghp_{'b' * 36} aws=AKIAABCDEFGHIJKLMNOP auth: Bearer abcdefghijklmnop123 ab"
    )

    redacted = redactor.redact(text)
    assert CANARY not in redacted
    assert "sk-proj" not in redacted
    assert "hvs." not in redacted
    assert "ghp_" not in redacted
    assert "AKIA" not in redacted
    assert "abcdefghijklmnop123" not in redacted
    assert redacted.endswith(" ab")
    assert redactor.secret_count == 1


def test_hashes_and_ids_are_not_mistaken_for_tokens() -> None:
    text = f"sha256={'a' * 64} run=20261124T130758Z-3f9a1c thread=0199a3c4-5b6d"
    assert Redactor().redact(text) == text


def test_a_value_registered_later_is_redacted_in_text_seen_before() -> None:
    """Redaction remembers texts it has seen; a new secret must not hide behind that."""
    redactor = Redactor()
    text = f"token {CANARY} in a manifest string"
    long_text = "x" * 2000 + CANARY  # past the remembered length
    assert redactor.redact(text) == text
    assert redactor.redact(long_text) == long_text

    redactor.register(CANARY)
    assert redactor.redact(text) == "token *** in a manifest string"
    assert redactor.redact(long_text) == "x" * 2000 + "***"

    redactor.clear()
    assert redactor.redact(text) == text


def test_nested_data_is_redacted_keys_included() -> None:
    redactor = Redactor()
    redactor.register(CANARY)
    data = {"a": [CANARY, {"b": f"x{CANARY}y"}], CANARY: 3, "n": 1}
    assert redactor.redact_data(data) == {"a": ["***", {"b": "x***y"}], "***": 3, "n": 1}


def test_every_log_record_is_redacted_before_any_handler(
    redactor: Redactor, tmp_path: Path
) -> None:
    log_file = tmp_path / "app.log"
    handler = logging.FileHandler(log_file)
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    logger = logging.getLogger("orchestrator.test-redaction")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    redactor.register(CANARY)
    install_log_redaction()
    try:
        logger.info("args %s", CANARY)
        logger.info(f"f-string {CANARY}")  # noqa: G004 - a secret formatted before logging
        try:
            raise RuntimeError(f"boom {CANARY}")
        except RuntimeError:
            logger.exception("failed with %r", {"token": CANARY})
    finally:
        logger.removeHandler(handler)
        handler.close()

    written = log_file.read_text()
    assert CANARY not in written
    assert written.count("***") >= 4
    assert "RuntimeError: boom ***" in written


def test_secret_in_log_manifest_and_audit_never_reaches_a_file(
    workspace: Workspace, redactor: Redactor, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    redactor.register(CANARY)
    install_log_redaction()
    log_file = tmp_path / "run.log"
    handler = logging.FileHandler(log_file)
    logging.getLogger().addHandler(handler)
    try:
        logging.getLogger("orchestrator.test").warning("using %s", CANARY)
        manifest = sample_manifest()
        workspace.store.create(manifest)

        def add_error(m):  # type: ignore[no-untyped-def]
            m.status_reason = f"failed with {CANARY}"
            m.errors.append(ErrorRecord(at=utc_now(), type="E", message=CANARY))

        workspace.store.update(manifest.task_id, manifest.run_id, add_error, note=CANARY)
        workspace.store.write_artifact(manifest.task_id, manifest.run_id, "log.txt", CANARY)
        workspace.audit.append("approval.decided", reason=f"because {CANARY}")
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()

    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) >= 4
    for path in files:
        assert CANARY.encode() not in path.read_bytes(), path
    assert CANARY not in caplog.text


def test_formatters_that_read_args_keep_working(redactor: Redactor) -> None:
    """uvicorn's access formatter unpacks ``record.args``: the shape must survive."""
    redactor.register(CANARY)
    install_log_redaction()
    record = logging.getLogger("uvicorn.access").makeRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "POST", f"/x?t={CANARY}", "1.1", 200),
        None,
    )
    client, method, path, version, status = record.args  # type: ignore[misc]
    assert (client, method, version, status) == ("127.0.0.1:5", "POST", "1.1", 200)
    assert CANARY not in path
    assert record.getMessage() == '127.0.0.1:5 - "POST /x?t=*** HTTP/1.1" 200'
