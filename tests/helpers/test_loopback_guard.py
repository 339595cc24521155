"""The suite-wide guard: no test process connects off loopback."""

from __future__ import annotations

import socket

import httpx
import pytest


def test_a_connection_off_loopback_is_refused_before_any_packet() -> None:
    with socket.socket() as sock, pytest.raises(AssertionError, match="stay on loopback"):
        sock.connect(("192.0.2.1", 80))  # TEST-NET-1: would hang, not fail, if attempted
    with pytest.raises(AssertionError, match="stay on loopback"):
        httpx.get("http://192.0.2.1/", timeout=1)


def test_loopback_connections_work() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname(), timeout=5):
            pass
