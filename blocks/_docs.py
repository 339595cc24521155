"""What the blocks share: where their documentation lives, how they word invalid fields."""

from __future__ import annotations

from pydantic import ConfigDict

DOCS_URL = "https://codex-orchestrator.dev/docs/credentials"
HIDE_INPUT = ConfigDict(hide_input_in_errors=True)
"""Validation errors must not echo field values (a role_id, a URL with credentials)."""
