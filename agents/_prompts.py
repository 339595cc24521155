"""Prompt templates (``agents/prompts/*.md``) and their rendering.

Templates use ``string.Template`` placeholders (``$name``), so the JSON and code they
quote need no escaping. Every prompt starts with its call marker (see
:mod:`agents.markers`); the optional context goes last, under its own heading.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from string import Template

from pydantic import BaseModel

from .markers import render_marker

CONTEXT_HEADING = "## Note from the orchestrator"


@cache
def template(name: str) -> Template:
    """The template ``agents/prompts/<name>.md``."""
    text = resources.files("agents").joinpath("prompts", f"{name}.md").read_text("utf-8")
    return Template(text)


def render(name: str, *, marker: dict[str, str], context: str = "", **values: str) -> str:
    """Render template ``name``: marker line first, context (if any) last.

    Raises:
        KeyError: a placeholder of the template has no value.
    """
    text = template(name).substitute(
        values, marker=render_marker(marker), context=_context_block(context)
    )
    return text.rstrip() + "\n"


def schema_text(model: type[BaseModel]) -> str:
    """The JSON Schema of ``model``, compact, for a prompt."""
    return json.dumps(model.model_json_schema(), separators=(",", ":"), sort_keys=True)


def bullet_list(items: list[str], *, empty: str = "- (none given)") -> str:
    return "\n".join(f"- {item}" for item in items) if items else empty


def _context_block(context: str) -> str:
    context = context.strip()
    return f"\n{CONTEXT_HEADING}\n\n{context}\n" if context else ""
