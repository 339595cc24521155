"""The replay provider's HTTP app: the streaming Responses API subset codex uses.

``POST /v1/responses`` answers with server-sent events: ``response.created``, one
``response.output_item.done`` per output item, ``response.completed`` (with usage).
A small control API under ``/_replay/`` sets latency and faults and lists the requests
received. Every request is one line in the request log.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from agents.markers import find_marker

from ._fixtures import FixtureSet, Script, Step

FaultKind = Literal["429", "500", "broken_stream"]
FAULT_KINDS: tuple[FaultKind, ...] = ("429", "500", "broken_stream")


@dataclass
class _Prompt:
    """The user message that selects the script: the last one carrying a marker."""

    index: int
    marker: dict[str, str]
    text: str


@dataclass
class ReplayState:
    """Fixtures, options and the request log; safe to change from another thread."""

    fixtures: FixtureSet
    latency: float = 0.0
    request_log: Path | None = None
    faults: deque[FaultKind] = field(default_factory=deque)
    requests: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add_faults(self, kind: FaultKind, count: int = 1) -> None:
        """Fail the next ``count`` model requests with ``kind``."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; expected one of {FAULT_KINDS}")
        with self._lock:
            self.faults.extend([kind] * count)

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def set_latency(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("latency must not be negative")
        with self._lock:
            self.latency = seconds

    def next_fault(self) -> FaultKind | None:
        with self._lock:
            return self.faults.popleft() if self.faults else None

    def record(self, entry: dict[str, Any]) -> None:
        line = json.dumps(entry, sort_keys=True)
        with self._lock:
            self.requests.append(entry)
            if self.request_log is not None:
                with self.request_log.open("a", encoding="utf-8") as log:
                    log.write(line + "\n")

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.requests)


def create_app(state: ReplayState) -> Starlette:
    """The ASGI app serving ``state``."""

    async def responses(request: Request) -> Response:
        return await _answer(state, request)

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "fixture_set": state.fixtures.name})

    async def faults(request: Request) -> Response:
        if request.method == "DELETE":
            state.clear_faults()
            return JSONResponse({"faults": []})
        body = await request.json()
        try:
            state.add_faults(body.get("fault"), int(body.get("count", 1)))
        except (ValueError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"faults": list(state.faults)})

    async def latency(request: Request) -> Response:
        body = await request.json()
        try:
            state.set_latency(float(body.get("seconds", 0)))
        except (ValueError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"latency": state.latency})

    async def requests(request: Request) -> Response:
        return JSONResponse(state.snapshot())

    return Starlette(
        routes=[
            Route("/v1/responses", responses, methods=["POST"]),
            Route("/responses", responses, methods=["POST"]),
            Route("/_replay/health", health, methods=["GET"]),
            Route("/_replay/faults", faults, methods=["POST", "DELETE"]),
            Route("/_replay/latency", latency, methods=["PUT", "POST"]),
            Route("/_replay/requests", requests, methods=["GET"]),
        ]
    )


async def _answer(state: ReplayState, request: Request) -> Response:
    try:
        body = await request.json()
    except ValueError:
        return _error(400, "replay provider: the request body is not JSON", "replay_bad_request")
    items = body.get("input") if isinstance(body, dict) else None
    items = items if isinstance(items, list) else []
    prompt = _selecting_prompt(items)
    entry = _log_entry(state, body, prompt)
    fault = state.next_fault()
    if fault in ("429", "500"):
        state.record({**entry, "status": int(fault), "fault": fault})
        return _error(int(fault), f"replay provider: injected fault {fault}", "replay_fault")
    script, problem = _choose_script(state.fixtures, prompt)
    if script is None:
        state.record({**entry, "status": 400, "error": problem})
        return _error(400, problem, "replay_no_script")
    step_index = _next_step(script, items, after=prompt.index)
    entry |= {"script": script.id, "step": step_index}
    if step_index >= len(script.steps):
        problem = (
            f"replay provider: script {script.id!r} of fixture set {state.fixtures.name!r} "
            f"has {len(script.steps)} steps; the model was asked for step {step_index + 1}"
        )
        state.record({**entry, "status": 400, "error": problem})
        return _error(400, problem, "replay_no_step")
    step = script.steps[step_index]
    latency = step.latency if step.latency is not None else state.latency
    state.record({**entry, "status": 200, "fault": fault, "latency_s": latency})
    stream = _events(script, step_index, step, latency=latency, broken=fault == "broken_stream")
    return StreamingResponse(stream, media_type="text/event-stream")


def _selecting_prompt(items: list[Any]) -> _Prompt:
    """The last user message with a marker (or the last user message, marker-less)."""
    last_plain: _Prompt | None = None
    for index in range(len(items) - 1, -1, -1):
        text = _user_text(items[index])
        if text is None:
            continue
        marker = find_marker(text)
        if marker is not None:
            return _Prompt(index, marker, text)
        if last_plain is None:
            last_plain = _Prompt(index, {}, text)
    return last_plain or _Prompt(-1, {}, "")


def _user_text(item: Any) -> str | None:
    if not isinstance(item, Mapping) or item.get("type", "message") != "message":
        return None
    if item.get("role") != "user":
        return None
    content = item.get("content")
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return None
    return "".join(str(part.get("text", "")) for part in content if isinstance(part, Mapping))


def _choose_script(fixtures: FixtureSet, prompt: _Prompt) -> tuple[Script | None, str]:
    scripts = fixtures.select(prompt.marker, prompt.text)
    if len(scripts) == 1:
        return scripts[0], ""
    looked_for = (
        " ".join(f"{k}={v}" for k, v in sorted(prompt.marker.items()))
        if prompt.marker
        else "no <orchestrator-call .../> marker in the last user message"
    )
    if scripts:
        names = ", ".join(s.id for s in scripts)
        return None, (
            f"replay provider: fixture set {fixtures.name!r} ({fixtures.path}) is ambiguous for "
            f"[{looked_for}]: scripts {names} all match"
        )
    return None, (
        f"replay provider: no script in fixture set {fixtures.name!r} ({fixtures.path}) "
        f"matches the prompt; looked for [{looked_for}]; scripts: {fixtures.describe()}"
    )


def _next_step(script: Script, items: list[Any], *, after: int) -> int:
    """One past the highest step of ``script`` already called after the prompt."""
    done = -1
    for item in items[after + 1 :]:
        if isinstance(item, Mapping) and item.get("type") in {"function_call", "custom_tool_call"}:
            step = script.step_of_call_id(str(item.get("call_id", "")))
            if step is not None:
                done = max(done, step)
    return done + 1


async def _events(
    script: Script, index: int, step: Step, *, latency: float, broken: bool
) -> AsyncIterator[bytes]:
    response_id = f"resp_{uuid.uuid4().hex[:16]}"
    if latency > 0:
        await anyio.sleep(latency)
    yield _sse({"type": "response.created", "response": {"id": response_id}})
    item = step.output_item(script.call_id(index))
    if broken:
        yield _sse({"type": "response.output_item.added", "output_index": 0, "item": item})
        return  # the stream ends without response.completed: codex sees it break off
    yield _sse({"type": "response.output_item.done", "output_index": 0, "item": item})
    usage = step.usage.as_responses_usage()
    yield _sse({"type": "response.completed", "response": {"id": response_id, "usage": usage}})


def _sse(event: Mapping[str, Any]) -> bytes:
    return f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()


def _error(status: int, message: str, code: str) -> JSONResponse:
    error_type = "invalid_request_error" if status == 400 else "server_error"
    return JSONResponse(
        {"error": {"message": message, "type": error_type, "code": code}}, status_code=status
    )


def _log_entry(state: ReplayState, body: Any, prompt: _Prompt) -> dict[str, Any]:
    tools = body.get("tools") if isinstance(body, dict) else None
    return {
        "ts": datetime.now(UTC).isoformat(),
        "fixture_set": state.fixtures.name,
        "script": None,
        "step": None,
        "role": prompt.marker.get("role"),
        "marker": prompt.marker,
        "model": body.get("model") if isinstance(body, dict) else None,
        "tools": sorted(
            str(t.get("name") or t.get("type")) for t in tools or [] if isinstance(t, Mapping)
        ),
    }
