"""Fixture sets: scripted model turns, one YAML file per script, matched on call markers.

A fixture set is a folder. Every ``*.yaml`` file in it is one script::

    id: build-slugify
    match: {role: builder, task: add-text-helpers, subtask: slugify}
    steps:
      - patch: |            # a freeform apply_patch call
          *** Begin Patch
          ...
      - exec: python -m pytest -q tests/test_slugify.py    # an exec_command call
      - json: {subtask_id: slugify, summary: ..., files_changed: [...]}   # final answer

A script answers the requests whose prompt marker (the last user message carrying one)
has every attribute in ``match`` (``kind`` defaults to ``turn``; ``contains`` is a
substring of that message instead). The most specific match wins. Which step answers is
read from the request alone: one past the highest step whose tool call is already in
the conversation after that message, so a restarted run replays identically.

An optional ``fixture-set.yaml`` names the set and may ``extends`` other sets (paths
relative to it): their scripts are inherited, and a script with the same id here
replaces the inherited one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, model_validator

from orchestrator.exceptions import ReplayFixtureError
from schemas import SafeId, StrictModel

SET_FILE = "fixture-set.yaml"
CALL_ID_PREFIX = "rp"
_ACTIONS = ("exec", "patch", "message", "json", "tool")


class Usage(StrictModel):
    input_tokens: int = Field(default=1200, ge=0)
    cached_input_tokens: int = Field(default=0, ge=0)
    output_tokens: int = Field(default=80, ge=0)
    reasoning_tokens: int = Field(default=0, ge=0)

    def as_responses_usage(self) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "input_tokens_details": {"cached_tokens": self.cached_input_tokens},
            "output_tokens": self.output_tokens,
            "output_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
            "total_tokens": self.input_tokens + self.output_tokens,
        }


class ToolCall(StrictModel):
    name: str = Field(min_length=1)
    arguments: dict[str, Any] = Field(default_factory=dict)


class Step(StrictModel):
    """One model response: exactly one action."""

    exec: str | None = Field(default=None, description="Shell command run by exec_command.")
    workdir: str | None = Field(default=None, description="exec: working directory.")
    escalate: bool = Field(default=False, description="exec: ask to run outside the sandbox.")
    justification: str | None = Field(default=None, description="exec: why it escalates.")
    yield_time_ms: int | None = Field(default=None, ge=0, description="exec: wait this long.")
    patch: str | None = Field(default=None, description="An apply_patch call (freeform).")
    message: str | None = Field(default=None, description="Final assistant message.")
    json_: Any = Field(default=None, alias="json", description="Final message, as JSON.")
    tool: ToolCall | None = Field(default=None, description="Any other function call.")
    latency: float | None = Field(default=None, ge=0, le=600, description="Seconds to wait.")
    usage: Usage = Field(default_factory=Usage)

    @model_validator(mode="before")
    @classmethod
    def _one_action(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            present = [name for name in _ACTIONS if data.get(name) is not None]
            if len(present) != 1:
                raise ValueError(f"a step needs exactly one of {', '.join(_ACTIONS)}")
        return data

    def output_item(self, call_id: str) -> dict[str, Any]:
        """The Responses API output item of this step."""
        if self.patch is not None:
            patch = self.patch if self.patch.endswith("\n") else self.patch + "\n"
            return {
                "type": "custom_tool_call",
                "name": "apply_patch",
                "call_id": call_id,
                "input": patch,
            }
        if self.exec is not None:
            return _function_call("exec_command", self._exec_arguments(), call_id)
        if self.tool is not None:
            return _function_call(self.tool.name, self.tool.arguments, call_id)
        text = self.message if self.message is not None else json.dumps(self.json_, indent=2)
        return {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}],
        }

    @property
    def calls_tool(self) -> bool:
        return self.message is None and self.json_ is None

    def _exec_arguments(self) -> dict[str, Any]:
        arguments: dict[str, Any] = {"cmd": self.exec, "login": False}
        if self.workdir is not None:
            arguments["workdir"] = self.workdir
        if self.yield_time_ms is not None:
            arguments["yield_time_ms"] = self.yield_time_ms
        if self.escalate:
            arguments["sandbox_permissions"] = "require_escalated"
            arguments["justification"] = self.justification or "needs to run outside the sandbox"
        return arguments


class Script(StrictModel):
    """The scripted turns answering one kind of call."""

    id: SafeId
    description: str = ""
    match: dict[str, str] = Field(min_length=1)
    steps: list[Step] = Field(min_length=1)

    def matches(self, marker: Mapping[str, str], text: str) -> bool:
        for key, wanted in self.match.items():
            if key == "contains":
                if wanted not in text:
                    return False
            elif marker.get(key) != wanted:
                return False
        return self.match.get("kind", "turn") == marker.get("kind", "turn")

    @property
    def specificity(self) -> int:
        return len(self.match)

    def call_id(self, step: int) -> str:
        return f"{CALL_ID_PREFIX}-{self.id}-{step}"

    def step_of_call_id(self, call_id: str) -> int | None:
        prefix = f"{CALL_ID_PREFIX}-{self.id}-"
        tail = call_id.removeprefix(prefix)
        return int(tail) if call_id.startswith(prefix) and tail.isdigit() else None


class FixtureSet:
    """The scripts of one folder (and the sets it extends)."""

    def __init__(self, name: str, path: Path, scripts: list[Script]) -> None:
        self.name = name
        self.path = path
        self.scripts = scripts

    @classmethod
    def load(cls, path: Path) -> FixtureSet:
        """Load the set in folder ``path``.

        Raises:
            ReplayFixtureError: the folder, a file, or a script is invalid.
        """
        return _load(Path(path).resolve(), seen=())

    def select(self, marker: Mapping[str, str], text: str) -> list[Script]:
        """The most specific scripts matching (one, unless the set is ambiguous)."""
        candidates = [s for s in self.scripts if s.matches(marker, text)]
        if not candidates:
            return []
        best = max(s.specificity for s in candidates)
        return [s for s in candidates if s.specificity == best]

    def describe(self) -> str:
        """The scripts and their match rules, for error messages."""
        return "; ".join(
            f"{s.id} ({' '.join(f'{k}={v}' for k, v in sorted(s.match.items()))})"
            for s in self.scripts
        )


def _load(path: Path, *, seen: tuple[Path, ...]) -> FixtureSet:
    if path in seen:
        raise ReplayFixtureError(f"{path}: fixture sets extend each other in a cycle")
    if not path.is_dir():
        raise ReplayFixtureError(f"{path}: not a fixture set folder")
    settings = _read_yaml(path / SET_FILE) if (path / SET_FILE).exists() else {}
    if not isinstance(settings, dict):
        raise ReplayFixtureError(f"{path / SET_FILE}: expected a mapping")
    scripts: dict[str, Script] = {}
    for parent in _as_list(settings.get("extends")):
        for script in _load((path / str(parent)).resolve(), seen=(*seen, path)).scripts:
            scripts[script.id] = script
    own: dict[str, Path] = {}
    for file in sorted(path.glob("*.yaml")):
        if file.name == SET_FILE:
            continue
        script = _parse_script(file)
        if script.id in own:
            raise ReplayFixtureError(
                f"{file}: script id {script.id!r} is also used by {own[script.id]}"
            )
        own[script.id] = file
        scripts[script.id] = script
    fixture_set = FixtureSet(str(settings.get("name") or path.name), path, list(scripts.values()))
    _check_unambiguous(fixture_set)
    return fixture_set


def _parse_script(file: Path) -> Script:
    try:
        return Script.model_validate(_read_yaml(file))
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"]) or "(file)"
        raise ReplayFixtureError(f"{file}: {where}: {error['msg']}") from exc


def _read_yaml(file: Path) -> Any:
    try:
        return yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ReplayFixtureError(f"{file}: cannot read YAML: {exc}") from exc


def _check_unambiguous(fixture_set: FixtureSet) -> None:
    seen: dict[tuple[tuple[str, str], ...], str] = {}
    for script in fixture_set.scripts:
        key = tuple(sorted({"kind": "turn", **script.match}.items()))
        if key in seen:
            raise ReplayFixtureError(
                f"{fixture_set.path}: scripts {seen[key]!r} and {script.id!r} match the same calls"
            )
        seen[key] = script.id


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _function_call(name: str, arguments: Mapping[str, Any], call_id: str) -> dict[str, Any]:
    return {
        "type": "function_call",
        "name": name,
        "arguments": json.dumps(arguments),
        "call_id": call_id,
    }
