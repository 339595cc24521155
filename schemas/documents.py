"""The documents that cross a boundary, their JSON Schema files, and validation against them.

The ``*.schema.json`` files next to this module are generated from the models by
``orchestrator schemas export``; a test fails when they drift. Files are checked
against them with jsonschema on read and on write, so a file written by another
tool gets the same check as one written by us.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema_rs
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from pydantic import BaseModel

from .approval import Approval, ApprovalDecision
from .audit import AuditEvent
from .codex import CodexServerConfig
from .inbox import DecisionNotice, GateNotice, ResumeNotice
from .library import LibraryEntry, LibraryIndex
from .manifest import RunManifest
from .outputs import BuildReport, Plan, ReviewVerdict, TestReport
from .prices import PriceTable
from .spec import SpecFrontMatter, SpecGuardReport
from .sync import SyncRecord
from .task import TaskSpec

SCHEMA_DIR = Path(__file__).parent

DOCUMENTS: dict[str, type[BaseModel]] = {
    "approval": Approval,
    "approval-decision": ApprovalDecision,
    "audit-event": AuditEvent,
    "build-report": BuildReport,
    "codex-server-config": CodexServerConfig,
    "decision-notice": DecisionNotice,
    "gate-notice": GateNotice,
    "library-entry": LibraryEntry,
    "library-index": LibraryIndex,
    "plan": Plan,
    "price-table": PriceTable,
    "resume-notice": ResumeNotice,
    "review-verdict": ReviewVerdict,
    "run-manifest": RunManifest,
    "spec-front-matter": SpecFrontMatter,
    "spec-guard-report": SpecGuardReport,
    "sync-record": SyncRecord,
    "task-spec": TaskSpec,
    "test-report": TestReport,
}


def schema_path(name: str) -> Path:
    return SCHEMA_DIR / f"{name}.schema.json"


def generate_schema(name: str) -> dict[str, Any]:
    """The JSON Schema of document ``name``, generated from its model."""
    model = DOCUMENTS[name]
    schema = model.model_json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://codex-orchestrator.dev/schemas/{name}.schema.json",
        **schema,
    }


def render_schema(name: str) -> str:
    return json.dumps(generate_schema(name), indent=2, sort_keys=True) + "\n"


@cache
def _committed_schema(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(schema_path(name).read_text(encoding="utf-8"))
    return schema


@cache
def _fast_validator(name: str) -> Any:
    return jsonschema_rs.validator_for(_committed_schema(name))


def schema_errors(name: str, data: Any) -> str | None:
    """Check ``data`` against the committed schema file; the best error message, or None.

    jsonschema-rs makes the check (about 100x faster than pure Python on a large
    manifest, and it runs on every read and write); on failure, jsonschema picks
    the most relevant error for the message.
    """
    if _fast_validator(name).is_valid(data):
        return None
    error = best_match(Draft202012Validator(_committed_schema(name)).iter_errors(data))
    if error is not None:
        return f"{_where(error.absolute_path)}: {error.message}"
    fast_error = next(iter(_fast_validator(name).iter_errors(data)))  # the validators disagree
    return f"{_where(fast_error.instance_path)}: {fast_error.message}"


def _where(path: Any) -> str:
    return "/".join(str(part) for part in path) or "(document)"
