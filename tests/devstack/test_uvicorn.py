"""The one uvicorn harness: serves from a thread, stops in time, reports what went wrong."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from devstack import UvicornThread
from orchestrator.exceptions import DevStackError, InvalidInputError


async def hello(request: Request) -> Response:
    return PlainTextResponse("hello")


def test_serves_on_a_free_port_from_a_thread_and_frees_it_on_stop() -> None:
    server = UvicornThread(Starlette(routes=[Route("/", hello)]), name="hello", lifespan="off")
    with server:
        url = server.url
        assert server.alive
        assert httpx.get(url, timeout=10).text == "hello"
    assert not server.alive
    with pytest.raises(httpx.ConnectError):
        httpx.get(url, timeout=2)


def test_a_taken_port_is_bad_input() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = UvicornThread(Starlette(), name="clash", port=taken.getsockname()[1])
        with pytest.raises(InvalidInputError, match=r"cannot listen on 127\.0\.0\.1"):
            server.start()


def test_an_app_that_fails_to_start_is_reported() -> None:
    @asynccontextmanager
    async def broken(app: Starlette) -> AsyncIterator[None]:
        raise OSError("database folder is not writable")
        yield

    server = UvicornThread(Starlette(lifespan=broken), name="broken", lifespan="on")
    with pytest.raises(DevStackError, match="broken did not start"):
        server.start(timeout=20)
    assert not server.alive
