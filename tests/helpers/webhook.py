"""A webhook receiver on loopback: what a notification block POSTs to, kept for the test."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Webhook:
    """A loopback HTTP server that keeps every JSON body POSTed to it."""

    server: ThreadingHTTPServer
    received: list[dict[str, Any]] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/notify"

    def of_run(self, run_id: str) -> list[dict[str, Any]]:
        with self.changed:
            return [r for r in self.received if run_id in r.get("subject", "")]

    def wait_for(self, run_id: str, subject: str, within: float) -> dict[str, Any]:
        """The first notification of ``run_id`` whose subject matches (bounded wait)."""
        deadline = time.monotonic() + within
        with self.changed:
            while True:
                found = [r for r in self.of_run(run_id) if re.search(subject, r["subject"])]
                if found:
                    return found[0]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {subject!r} notification: {self.received}")
                self.changed.wait(left)


@contextmanager
def webhook_receiver() -> Iterator[Webhook]:
    """A :class:`Webhook` on a free loopback port, shut down on exit."""
    hook: Webhook

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            with hook.changed:
                hook.received.append({"path": self.path, **json.loads(body)})
                hook.changed.notify_all()
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    hook = Webhook(server)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
