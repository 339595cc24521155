"""The model's command tool calls and their outputs, from the response items codex records.

codex's exec events do not name every command the model ran: a command the sandbox
refused often has no exec events at all (on replay: codex 0.147 ``mcp-server`` in 23 of
40 turns, codex 0.163 ``app-server`` no ``commandExecution`` item in 21 of 30), or an
end event with an empty output. The response items codex sends the model are complete:
the ``function_call`` that asked for the command and the ``function_call_output`` codex
answered with (exit code and output). Both backends forward them (``raw_response_item``
events on MCP, ``rawResponseItem/completed`` notifications on app-server);
:func:`tool_fields` turns the command ones into :class:`~agents.events.ToolCall` /
:class:`~agents.events.ToolOutput` fields and drops every other item (messages,
reasoning).

The few fields are read by hand, shaped as the SDK's ``FunctionCallResponseItem`` /
``FunctionCallOutputResponseItem``: importing its generated models costs 0.7 CPU-seconds
that an ``mcp`` run never needs otherwise. Kept apart from :mod:`agents.events` (which
builds the events) so that both backends' readers share it without an import cycle.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from typing import Any, Final

__all__ = ["COMMAND_TOOLS", "TOOL_CALL", "TOOL_OUTPUT", "command_text", "tool_fields"]

TOOL_CALL: Final = "tool_call"
TOOL_OUTPUT: Final = "tool_output"

COMMAND_TOOLS: Final = frozenset({"exec_command", "shell", "shell_command"})
"""The tools whose calls start a command (``write_stdin`` only talks to a running one)."""

_EXIT_LINE = re.compile(r"^(?:Process exited with code|Exit code:) (-?\d+)\s*$", re.MULTILINE)
_OUTPUT_MARK = "\nOutput:\n"


def tool_fields(item: Mapping[str, Any]) -> dict[str, Any] | None:
    """The event fields (``type`` included) of one response item; None for an item that
    is not about a command."""
    kind, call_id = item.get("type"), item.get("call_id")
    if not isinstance(call_id, str):
        return None
    if kind == "function_call" and item.get("name") in COMMAND_TOOLS:
        return _call(call_id, str(item["name"]), item.get("arguments"))
    if kind == "function_call_output":
        return _output(call_id, item.get("output"))
    return None


def command_text(command: list[str]) -> str:
    """The command as a person would type it: the script of ``bash -lc <script>``."""
    if len(command) == 3 and command[1] in {"-c", "-lc"}:
        return command[2]
    return shlex.join(command)


def _call(call_id: str, tool: str, arguments_text: Any) -> dict[str, Any]:
    arguments = _arguments(arguments_text) if isinstance(arguments_text, str) else {}
    command = arguments.get("cmd", arguments.get("command", ""))
    if isinstance(command, list):
        command = command_text([str(part) for part in command])
    workdir = arguments.get("workdir")
    return {
        "type": TOOL_CALL,
        "call_id": call_id,
        "tool": tool,
        "command": str(command),
        "cwd": workdir if isinstance(workdir, str) else None,
    }


def _output(call_id: str, body: Any) -> dict[str, Any]:
    text = body if isinstance(body, str) else "\n".join(_texts(body))
    exit_code, output = _exit_and_output(text)
    return {"type": TOOL_OUTPUT, "call_id": call_id, "exit_code": exit_code, "output": output}


def _exit_and_output(text: str) -> tuple[int | None, str]:
    """The exit code and the command's own output of a tool output.

    ``exec_command`` answers ``Process exited with code N ... Output:\\n<output>``;
    ``shell_command`` ``Exit code: N ... Output:\\n<output>``; the older ``shell``
    tool a JSON object with ``output`` and ``metadata.exit_code``.
    """
    as_json = _arguments(text)
    metadata = as_json.get("metadata")
    if isinstance(metadata, Mapping) and "output" in as_json:
        code = metadata.get("exit_code")
        return (code if isinstance(code, int) else None), str(as_json["output"])
    header, mark, output = text.partition(_OUTPUT_MARK)
    match = _EXIT_LINE.search(header)
    return (int(match.group(1)) if match else None), (output if mark else text)


def _arguments(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _texts(body: Any) -> list[str]:
    """The texts of an output given as content items (``[{"type": "input_text", ...}]``)."""
    items = body if isinstance(body, list) else []
    return [i["text"] for i in items if isinstance(i, dict) and isinstance(i.get("text"), str)]
