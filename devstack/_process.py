"""A server subprocess of ours and the URL it printed (replay model, reference Runs API)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Self

from orchestrator.supervisor import Stoppable, Supervised, clean_environ, ready_line, spawn

START_TIMEOUT = 30.0


class ServerProcess(Stoppable):
    """A server running as our child (it dies with us); stopped by PID with :meth:`stop`."""

    def __init__(self, process: Supervised, url: str, *, scratch: Path | None = None) -> None:
        self.process = process
        self.url = url
        self._scratch = scratch

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def log_path(self) -> Path:
        return self.process.log

    @classmethod
    def start(
        cls,
        name: str,
        command: Sequence[str],
        *,
        ready: str,
        log: Path | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = START_TIMEOUT,
    ) -> Self:
        """Spawn ``command`` and wait for its ready line (``ready``: group 1 is the URL).

        Its output goes to ``log`` (default: a temporary file, removed on stop).

        Raises:
            ProcessError: it exited, or did not print its ready line within ``timeout``.
        """
        scratch = None
        if log is None:
            scratch = Path(tempfile.mkdtemp(prefix=f"{name}-"))
            log = scratch / f"{name}.log"
        process = spawn(name, command, log=log, env=clean_environ(env))
        try:
            url = process.wait_ready(ready_line(ready), timeout=timeout)
        finally:
            if scratch is not None and not process.running:
                shutil.rmtree(scratch, ignore_errors=True)
        return cls(process, url, scratch=scratch)

    def stop(self, *, timeout: float = 5.0) -> int | None:
        """SIGTERM, ``timeout``, SIGKILL (by PID and start time); its exit code."""
        code = self.process.stop(timeout=timeout)
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
        return code
