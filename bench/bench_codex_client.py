"""Benchmark: time per codex call through our clients, against bare clients of the same
protocols, for both agent backends side by side.

    .venv/bin/python bench/bench_codex_client.py [--calls 20] [--rounds 3] [--check]

Starts the replay provider as a subprocess (so it does not share this process's CPU),
then makes the same calls two ways per backend:

- ``mcp`` (``codex mcp-server``): ours is :class:`agents.CodexSession` (event stream
  typed and summarised, approvals wired, the descendant watcher running); bare is the
  SDK's ``stdio_client`` + ``ClientSession.call_tool`` and nothing else;
- ``app-server`` (``codex app-server``): ours is :class:`agents.AppServerSession`;
  bare writes ``thread/start`` + ``turn/start`` as JSON lines and reads lines until
  ``turn/completed``, nothing else.

Bare clients get the same generated ``CODEX_HOME`` and environment as ours. A timed
call runs one shell command and answers (two model requests). The clients take turns,
``--rounds`` batches of ``--calls`` each after a warm-up; the table shows per backend
the median time of a spawn (to initialized), a message-only turn and a one-command
turn through ours, and the one-command ratio ours/bare (target <= 1.05 each;
``--check`` exits 1 when one is missed).
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from agents import render_marker
from agents._home import private_codex_home
from agents._launch import resolve_app_server_command
from agents.backend import new_session
from agents.session import resolve_codex_command, server_environment
from devstack.replay import ReplayProcess, replay_config
from schemas import AgentBackend, CodexServerConfig

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "agents" / "fixtures" / "session"
PROMPT = render_marker({"role": "test", "case": "hello"}) + "\nSay hello.\n"
MESSAGE_ONLY = render_marker({"role": "test", "case": "reply-first"}) + "\n"
TARGET = 1.05
BACKENDS: tuple[AgentBackend, ...] = ("mcp", "app-server")

Call = Callable[[], Awaitable[None]]


async def time_calls(call: Call, count: int) -> list[float]:
    times: list[float] = []
    for _ in range(count):
        started = time.perf_counter()
        await call()
        times.append(time.perf_counter() - started)
    return times


def arguments(repo: Path, config: CodexServerConfig) -> dict[str, str]:
    return {
        "prompt": PROMPT,
        "cwd": str(repo),
        "sandbox": config.sandbox,
        "approval-policy": config.approval_policy,
    }


class Times:
    """The timings of one backend."""

    def __init__(self) -> None:
        self.spawn: list[float] = []
        self.message: list[float] = []
        self.ours: list[float] = []
        self.bare: list[float] = []


async def run_ours(
    config: CodexServerConfig, repo: Path, times: Times, *, calls: int, warmup: int
) -> None:
    started = time.perf_counter()
    async with new_session(config) as session:
        times.spawn.append(time.perf_counter() - started)

        async def call() -> None:
            turn = await session.start(PROMPT, cwd=repo)
            assert turn.text == "said hello" and turn.commands[0].exit_code == 0

        async def message() -> None:
            turn = await session.start(MESSAGE_ONLY, cwd=repo)
            assert turn.text == "first answer" and not turn.commands

        await time_calls(call, warmup)
        times.message += await time_calls(message, max(1, calls // 4))
        times.ours += await time_calls(call, calls)


async def run_bare(
    config: CodexServerConfig, repo: Path, *, calls: int, warmup: int
) -> list[float]:
    if config.backend == "app-server":
        return await run_bare_app_server(config, repo, calls=calls, warmup=warmup)
    return await run_bare_mcp(config, repo, calls=calls, warmup=warmup)


async def run_bare_mcp(
    config: CodexServerConfig, repo: Path, *, calls: int, warmup: int
) -> list[float]:
    with private_codex_home(config, path=None) as home:
        # The same process environment as ours, so that only the clients differ.
        env = server_environment(home, {})
        server = StdioServerParameters(
            command=resolve_codex_command(config), args=["mcp-server"], env=env, cwd=home
        )
        async with stdio_client(server) as (read, write), ClientSession(read, write) as session:
            await session.initialize()

            async def call() -> None:
                result = await session.call_tool("codex", arguments(repo, config))
                assert not result.is_error

            await time_calls(call, warmup)
            return await time_calls(call, calls)


async def run_bare_app_server(
    config: CodexServerConfig, repo: Path, *, calls: int, warmup: int
) -> list[float]:
    with private_codex_home(config, path=None) as home:
        env = server_environment(home, {})
        command = [resolve_app_server_command(config), "app-server"]
        async with await anyio.open_process(command, env=env, cwd=home) as process:
            assert process.stdin is not None and process.stdout is not None
            ids = itertools.count(1)
            buffer = b""

            async def lines() -> dict[str, object]:
                nonlocal buffer
                assert process.stdout is not None
                while b"\n" not in buffer:
                    buffer += await process.stdout.receive()
                line, buffer = buffer.split(b"\n", 1)
                message: dict[str, object] = json.loads(line)
                return message

            async def request(method: str, params: dict[str, object]) -> dict[str, object]:
                assert process.stdin is not None
                request_id = next(ids)
                line = {"id": request_id, "method": method, "params": params}
                await process.stdin.send((json.dumps(line) + "\n").encode())
                while (message := await lines()).get("id") != request_id:
                    pass
                result = message["result"]
                assert isinstance(result, dict)
                return result

            await request("initialize", {"clientInfo": {"name": "bare", "version": "0"}})
            await process.stdin.send(b'{"method": "initialized"}\n')

            async def call() -> None:
                thread = await request(
                    "thread/start",
                    {
                        "cwd": str(repo),
                        "sandbox": config.sandbox,
                        "approvalPolicy": config.approval_policy,
                        "approvalsReviewer": "user",
                    },
                )
                thread_id = thread["thread"]["id"]  # type: ignore[index]
                text = [{"type": "text", "text": PROMPT}]
                await request("turn/start", {"threadId": thread_id, "input": text})
                while (await lines()).get("method") != "turn/completed":
                    pass

            await time_calls(call, warmup)
            times = await time_calls(call, calls)
            await process.stdin.aclose()
            return times


def make_repo(parent: Path) -> Path:
    repo = parent / "repo"
    repo.mkdir()
    (repo / "README.md").write_text("bench\n")
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "base"]):
        subprocess.run(
            ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid", *command],
            cwd=repo,
            check=True,
        )
    return repo


async def bench(calls: int, rounds: int, warmup: int) -> dict[AgentBackend, Times]:
    results = {backend: Times() for backend in BACKENDS}
    with tempfile.TemporaryDirectory() as scratch, ReplayProcess.spawn(FIXTURES) as replay:
        repo = make_repo(Path(scratch))
        for _ in range(rounds):
            for backend, times in results.items():
                config = replay_config(replay.url, backend=backend)
                await run_ours(config, repo, times, calls=calls, warmup=warmup)
                times.bare += await run_bare(config, repo, calls=calls, warmup=warmup)
    return results


def ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20, help="Timed calls per batch.")
    parser.add_argument("--rounds", type=int, default=3, help="Batches per client.")
    parser.add_argument("--warmup", type=int, default=2, help="Untimed calls per batch.")
    parser.add_argument("--check", action="store_true", help=f"Exit 1 if ratio > {TARGET}.")
    args = parser.parse_args()

    results = anyio.run(bench, args.calls, args.rounds, args.warmup)
    print(f"codex calls: {args.calls * args.rounds} timed per client (one command + answer)")
    header = ("backend", "spawn ms", "message ms", "command ms", "bare ms", "ratio")
    print(f"{header[0]:<12}" + "".join(f"{h:>12}" for h in header[1:]))
    missed = []
    for backend, times in results.items():
        ratio = ms(times.ours) / ms(times.bare)
        cells = (ms(times.spawn), ms(times.message), ms(times.ours), ms(times.bare))
        print(f"{backend:<12}" + "".join(f"{c:>12.1f}" for c in cells) + f"{ratio:>12.3f}")
        if ratio > TARGET:
            missed.append(backend)
    verdict = f"MISSED by {', '.join(missed)}" if missed else "ok"
    print(f"target ratio <= {TARGET} per backend: {verdict}")
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
