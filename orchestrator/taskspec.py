"""Reading task spec files (YAML or JSON) into :class:`schemas.TaskSpec`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from schemas import TaskSpec, schema_errors

from ._documents import first_problem, yaml_problem
from .exceptions import TaskSpecError

MAX_TASK_FILE_BYTES = 256 * 1024
MAX_NESTING = 32
"""Deeper than any task spec needs; parsers and validators recurse, so cap it up front."""
TASK_SUFFIXES = (".yaml", ".yml", ".json")


def load_task_spec(path: Path) -> TaskSpec:
    """Parse and validate a task file.

    Raises:
        TaskSpecError: the file is missing, too large, not YAML/JSON, or invalid; the
            message names the file, the field and the reason.
    """
    data = _read_document(path)
    try:
        spec = TaskSpec.model_validate(data)
    except ValidationError as exc:
        raise _spec_error(exc, path) from None
    error = schema_errors("task-spec", data)
    if error:  # the committed schema is the contract other tools write against
        raise TaskSpecError(error, path=str(path))
    return spec


def resolve_repo(spec: TaskSpec, task_path: Path) -> Path:
    """The target repository's absolute path (relative paths start at the task file)."""
    repo = Path(spec.target.repo).expanduser()
    if not repo.is_absolute():
        repo = task_path.resolve().parent / repo
    return repo.resolve()


def _read_document(path: Path) -> Any:
    where = str(path)
    if path.suffix not in TASK_SUFFIXES:
        raise TaskSpecError(f"task files end in {', '.join(TASK_SUFFIXES)}", path=where)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise TaskSpecError("no such file", path=where) from None
    if not path.is_file():
        raise TaskSpecError("not a file", path=where)
    if size > MAX_TASK_FILE_BYTES:
        raise TaskSpecError(
            f"file is {size} bytes; task files are at most {MAX_TASK_FILE_BYTES}", path=where
        )
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except UnicodeDecodeError:
        raise TaskSpecError("not UTF-8 text", path=where) from None
    except json.JSONDecodeError as exc:
        raise TaskSpecError(f"not valid JSON: {exc.msg} (line {exc.lineno})", path=where) from None
    except yaml.YAMLError as exc:
        raise TaskSpecError(f"not valid YAML: {yaml_problem(exc)}", path=where) from None
    except RecursionError:
        raise TaskSpecError(_too_deep(), path=where) from None
    if not isinstance(data, dict):
        raise TaskSpecError("the document must be a mapping of fields", path=where)
    if _nesting(data) > MAX_NESTING:
        raise TaskSpecError(_too_deep(), path=where)
    return data


def _too_deep() -> str:
    return f"values are nested more than {MAX_NESTING} levels deep"


def _nesting(data: Any) -> int:
    """How deeply lists and mappings nest in ``data`` (without recursion)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: list[Any] = list(value.values())
        elif isinstance(value, list):
            children = value
        else:
            continue
        deepest = max(deepest, depth)
        if depth <= MAX_NESTING:  # deeper is refused anyway; stop walking
            stack.extend((child, depth + 1) for child in children)
    return deepest


def _spec_error(exc: ValidationError, path: Path) -> TaskSpecError:
    field, reason = first_problem(exc)
    return TaskSpecError(reason, path=str(path), field=field)
