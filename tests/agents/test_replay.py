"""The replay provider: matching, stateless steps, faults, latency, the log, the CLI."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from agents import render_marker
from devstack.replay import (
    FixtureSet,
    ReplayProcess,
    ReplayServer,
    ReplayState,
    create_app,
)
from orchestrator.exceptions import ProcessError, ReplayFixtureError

from .conftest import FAILING_FIXTURES, SAMPLE_FIXTURES, TEST_FIXTURES, alive

pytestmark = pytest.mark.anyio


def user(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def body(*items: dict[str, Any]) -> dict[str, Any]:
    context = user("<environment_context>cwd</environment_context>")
    return {"model": "replay", "stream": True, "input": [context, *items], "tools": []}


def marked(**attributes: str) -> dict[str, Any]:
    return user(render_marker(attributes) + "\nPlease do it.")


def sse_events(text: str) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]


def client(
    fixtures: Path = SAMPLE_FIXTURES, **options: Any
) -> tuple[httpx.AsyncClient, ReplayState]:
    state = ReplayState(fixtures=FixtureSet.load(fixtures), **options)
    transport = httpx.ASGITransport(app=create_app(state))
    return httpx.AsyncClient(transport=transport, base_url="http://replay"), state


async def test_a_marked_prompt_gets_its_script_step_by_step() -> None:
    http, state = client()
    prompt = marked(role="builder", task="add-text-helpers", subtask="slugify")
    async with http:
        first = sse_events((await http.post("/v1/responses", json=body(prompt))).text)
        call = first[1]["item"]
        output = {"type": "custom_tool_call_output", "call_id": call["call_id"], "output": "ok"}
        second = sse_events(
            (await http.post("/v1/responses", json=body(prompt, call, output))).text
        )

    assert [e["type"] for e in first] == [
        "response.created",
        "response.output_item.done",
        "response.completed",
    ]
    assert call["type"] == "custom_tool_call" and call["name"] == "apply_patch"
    assert call["input"].startswith("*** Begin Patch\n*** Add File: textkit/slugify.py")
    exec_call = second[1]["item"]
    assert exec_call["name"] == "exec_command"
    assert json.loads(exec_call["arguments"]) == {
        "cmd": "python -m pytest -q -p no:cacheprovider tests/test_slugify.py",
        "login": False,
    }
    assert first[2]["response"]["usage"]["input_tokens"] == 1200
    assert [(r["script"], r["step"], r["role"]) for r in state.snapshot()] == [
        ("build-slugify", 0, "builder"),
        ("build-slugify", 1, "builder"),
    ]


async def test_the_same_request_gets_the_same_answer() -> None:
    http, _ = client()
    request = body(marked(role="planner", task="add-text-helpers"))
    async with http:
        answers = [(await http.post("/v1/responses", json=request)).text for _ in range(2)]
    items = [sse_events(a)[1]["item"] for a in answers]
    assert items[0] == items[1]


async def test_extra_context_in_the_prompt_does_not_change_the_match() -> None:
    http, state = client()
    note = user(
        render_marker({"role": "reviewer", "task": "add-word-stats"})
        + "\nReview this.\n## Note from the orchestrator\n\nRedone after a crash."
    )
    async with http:
        answer = sse_events((await http.post("/v1/responses", json=body(note))).text)
    verdict = json.loads(answer[1]["item"]["content"][0]["text"])
    assert verdict["verdict"] == "approve"
    assert state.snapshot()[0]["script"] == "review-add-word-stats"


async def test_the_failing_set_inherits_and_overrides_scripts() -> None:
    failing = FixtureSet.load(FAILING_FIXTURES)
    sample = FixtureSet.load(SAMPLE_FIXTURES)
    assert failing.name == "sample-failing"
    assert {s.id for s in failing.scripts} == {s.id for s in sample.scripts}
    [truncate] = failing.select(
        {"role": "builder", "task": "add-text-helpers", "subtask": "truncate"}, ""
    )
    assert 'text[:width] + "..."' in (truncate.steps[0].patch or "")


async def test_an_unknown_prompt_is_a_400_naming_the_fixture_set_and_the_marker() -> None:
    http, state = client()
    async with http:
        response = await http.post("/v1/responses", json=body(marked(role="builder", task="nope")))
        plain = await http.post("/v1/responses", json=body(user("hello")))
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "fixture set 'sample'" in message
    assert "role=builder task=nope" in message
    assert "build-slugify (role=builder subtask=slugify task=add-text-helpers)" in message
    assert "no <orchestrator-call" in plain.json()["error"]["message"]
    assert [r["status"] for r in state.snapshot()] == [400, 400]


async def test_a_script_run_past_its_last_step_is_a_400() -> None:
    http, _ = client(TEST_FIXTURES / "session")
    prompt = user(render_marker({"role": "test", "case": "hello"}))
    call = {
        "type": "function_call",
        "name": "exec_command",
        "call_id": "rp-hello-1",
        "arguments": "{}",
    }
    async with http:
        response = await http.post("/v1/responses", json=body(prompt, call))
    assert response.status_code == 400
    assert "has 2 steps; the model was asked for step 3" in response.json()["error"]["message"]


async def test_faults_fail_the_next_requests_in_order() -> None:
    http, state = client()
    request = body(marked(role="planner", task="add-word-stats"))
    async with http:
        added = await http.post("/_replay/faults", json={"fault": "429", "count": 2})
        await http.post("/_replay/faults", json={"fault": "500"})
        await http.post("/_replay/faults", json={"fault": "broken_stream"})
        statuses = [(await http.post("/v1/responses", json=request)).status_code for _ in range(3)]
        broken = await http.post("/v1/responses", json=request)
        healthy = await http.post("/v1/responses", json=request)
        refused = await http.post("/_replay/faults", json={"fault": "boom"})
    assert added.json() == {"faults": ["429", "429"]}
    assert statuses == [429, 429, 500]
    assert [e["type"] for e in sse_events(broken.text)] == [
        "response.created",
        "response.output_item.added",
    ]
    assert sse_events(healthy.text)[-1]["type"] == "response.completed"
    assert refused.status_code == 400
    assert [r["fault"] for r in state.snapshot()] == ["429", "429", "500", "broken_stream", None]


async def test_latency_delays_each_answer(tmp_path: Path) -> None:
    http, state = client()
    request = body(marked(role="planner", task="add-word-stats"))
    async with http:
        await http.put("/_replay/latency", json={"seconds": 0.2})
        started = time.monotonic()
        await http.post("/v1/responses", json=request)
    assert time.monotonic() - started >= 0.2
    assert state.snapshot()[0]["latency_s"] == 0.2


def test_the_server_writes_a_jsonl_request_log(tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    with ReplayServer(SAMPLE_FIXTURES, request_log=log, faults=["500"]) as server:
        request = body(marked(role="tester", task="add-text-helpers"))
        statuses = [
            httpx.post(f"{server.url}/responses", json=request).status_code for _ in range(2)
        ]
        health = httpx.get(f"{server.control_url}/health").json()
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert statuses == [500, 200]
    assert health == {"status": "ok", "fixture_set": "sample"}
    assert [(e["status"], e["script"], e["step"]) for e in lines] == [
        (500, None, None),
        (200, "test-add-text-helpers", 0),
    ]
    assert {"ts", "fixture_set", "role", "marker", "tools"} <= set(lines[1])
    assert lines[1]["marker"] == {"role": "tester", "task": "add-text-helpers"}


def test_the_subprocess_prints_its_url_and_stops_by_pid(tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    with ReplayProcess.spawn(SAMPLE_FIXTURES, request_log=log, latency=0.01) as replay:
        assert replay.url.startswith("http://127.0.0.1:") and replay.url.endswith("/v1")
        request = body(marked(role="reviewer", task="add-text-helpers"))
        assert httpx.post(f"{replay.url}/responses", json=request).status_code == 200
        pid = replay.pid
        os.kill(pid, signal.SIGTERM)
        replay.process.wait(timeout=10)
    assert not alive(pid)
    assert json.loads(log.read_text())["script"] == "review-add-text-helpers"


def test_the_subprocess_refuses_a_bad_fixture_set(tmp_path: Path) -> None:
    with pytest.raises(ProcessError, match="not a fixture set folder"):
        ReplayProcess.spawn(tmp_path / "missing")


@pytest.mark.parametrize(
    ("files", "problem"),
    [
        ({"a.yaml": "id: a\nmatch: {role: x}\nsteps: [{exec: ls, message: hi}]\n"}, "exactly one"),
        ({"a.yaml": "id: a\nmatch: {role: x}\nsteps: []\n"}, "steps"),
        (
            {
                "a.yaml": "id: a\nmatch: {role: x}\nsteps: [{message: hi}]\n",
                "b.yaml": "id: b\nmatch: {role: x}\nsteps: [{message: hi}]\n",
            },
            "match the same calls",
        ),
        (
            {
                "a.yaml": "id: a\nmatch: {role: x}\nsteps: [{message: hi}]\n",
                "b.yaml": "id: a\nmatch: {role: y}\nsteps: [{message: hi}]\n",
            },
            "is also used by",
        ),
        ({"fixture-set.yaml": "extends: .\n"}, "cycle"),
        ({"a.yaml": "id: a\nmatch: [oops\n"}, "cannot read YAML"),
    ],
)
def test_a_bad_fixture_set_is_refused_naming_the_file(
    tmp_path: Path, files: dict[str, str], problem: str
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(ReplayFixtureError, match=problem):
        FixtureSet.load(tmp_path)


@pytest.mark.parametrize(
    "fixtures",
    [SAMPLE_FIXTURES, FAILING_FIXTURES, TEST_FIXTURES / "session", TEST_FIXTURES / "roles"],
)
def test_every_shipped_fixture_set_loads(fixtures: Path) -> None:
    assert FixtureSet.load(fixtures).scripts


def test_the_sample_set_answers_every_call_of_both_sample_tasks() -> None:
    sample = FixtureSet.load(SAMPLE_FIXTURES)
    calls: list[dict[str, str]] = []
    for task, subtasks in {
        "add-text-helpers": ["slugify", "truncate"],
        "add-word-stats": ["longest-word", "unique-words"],
    }.items():
        calls += [{"role": role, "task": task} for role in ("planner", "tester", "reviewer")]
        calls += [{"role": "builder", "task": task, "subtask": s} for s in subtasks]
    assert all(len(sample.select(marker, "")) == 1 for marker in calls)
