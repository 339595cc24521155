"""Benchmark: time per codex call through our client, against a bare ``mcp`` SDK script.

    .venv/bin/python bench/bench_codex_client.py [--calls 20] [--rounds 3] [--check]

Starts the replay provider as a subprocess (so it does not share this process's CPU),
then makes the same ``codex`` tool calls two ways against the real ``codex mcp-server``:

- ours: :class:`agents.CodexSession` (event stream typed and summarised, approvals
  wired, the descendant watcher running);
- bare: the SDK's ``stdio_client`` + ``ClientSession.call_tool`` and nothing else,
  with the same generated ``CODEX_HOME``.

Each call runs one shell command and answers (two model requests). The two clients
take turns, ``--rounds`` batches of ``--calls`` each after a warm-up, and the table
shows the median time per call and the ratio ours/bare (target <= 1.1; ``--check``
exits 1 when it is missed).
"""

from __future__ import annotations

import argparse
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

from agents import CodexSession, render_marker
from agents._home import private_codex_home
from agents.session import resolve_codex_command, server_environment
from devstack.replay import ReplayProcess, replay_config
from schemas import CodexServerConfig

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "agents" / "fixtures" / "session"
PROMPT = render_marker({"role": "test", "case": "hello"}) + "\nSay hello.\n"
TARGET = 1.1

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


async def run_ours(
    config: CodexServerConfig, repo: Path, *, calls: int, warmup: int
) -> list[float]:
    async with CodexSession(config) as session:

        async def call() -> None:
            turn = await session.start(PROMPT, cwd=repo)
            assert turn.text == "said hello" and turn.commands[0].exit_code == 0

        await time_calls(call, warmup)
        return await time_calls(call, calls)


async def run_bare(
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


async def bench(calls: int, rounds: int, warmup: int) -> tuple[list[float], list[float]]:
    ours: list[float] = []
    bare: list[float] = []
    with tempfile.TemporaryDirectory() as scratch, ReplayProcess.spawn(FIXTURES) as replay:
        repo = make_repo(Path(scratch))
        config = replay_config(replay.url)
        for _ in range(rounds):
            ours += await run_ours(config, repo, calls=calls, warmup=warmup)
            bare += await run_bare(config, repo, calls=calls, warmup=warmup)
    return ours, bare


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20, help="Timed calls per batch.")
    parser.add_argument("--rounds", type=int, default=3, help="Batches per client.")
    parser.add_argument("--warmup", type=int, default=2, help="Untimed calls per batch.")
    parser.add_argument("--check", action="store_true", help=f"Exit 1 if ratio > {TARGET}.")
    args = parser.parse_args()

    ours, bare = anyio.run(bench, args.calls, args.rounds, args.warmup)
    ours_ms, bare_ms = statistics.median(ours) * 1000, statistics.median(bare) * 1000
    ratio = ours_ms / bare_ms
    print(f"codex calls: {len(ours)} per client (one command + answer each)")
    print(f"{'client':<28}{'median ms/call':>16}{'mean ms/call':>14}")
    print(f"{'ours (CodexSession)':<28}{ours_ms:>16.1f}{statistics.mean(ours) * 1000:>14.1f}")
    print(f"{'bare mcp SDK (call_tool)':<28}{bare_ms:>16.1f}{statistics.mean(bare) * 1000:>14.1f}")
    verdict = "ok" if ratio <= TARGET else "MISSED"
    print(f"ratio ours/bare: {ratio:.3f} (target <= {TARGET}: {verdict})")
    return 1 if args.check and ratio > TARGET else 0


if __name__ == "__main__":
    sys.exit(main())
