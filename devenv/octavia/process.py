"""The parent side: `python -m devenv.octavia` as a child process, started, stopped and
started again on the same port, for tests and benchmarks."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path
from types import TracebackType

from devenv import processes
from devenv.octavia.server import READY_PREFIX

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class OctaviaStartError(RuntimeError):
    """The launcher died or did not announce readiness in time."""


class OctaviaServer:
    """Run ``python -m devenv.octavia`` as a child process; usable as a context manager.

    ``stop()`` simulates "Octavia is down"; ``start()`` brings it back on the same port with
    the same SQLite database, so objects survive. Leaving the ``with`` block stops the child
    (it never writes ``/tmp/octavia-network-noop.db``: see `noop_drivers`).
    """

    def __init__(self, workdir: Path, port: int = 0, start_timeout: float = 60.0) -> None:
        self.workdir = Path(workdir).resolve()
        self.port = port
        self.start_timeout = start_timeout
        self.endpoint: str | None = None
        self.startup_seconds: float | None = None
        self._proc: subprocess.Popen[str] | None = None
        self._stderr_path = self.workdir / "launcher.stderr"
        self._drain: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """True while the child process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> str:
        """Start the child (same port after the first start) and return the endpoint URL."""
        if self.running:
            assert self.endpoint is not None
            return self.endpoint
        self.workdir.mkdir(parents=True, exist_ok=True)
        began = time.monotonic()
        with self._stderr_path.open("ab") as stderr:
            self._proc = subprocess.Popen(
                [
                    sys.executable,
                    "-u",
                    "-m",
                    "devenv.octavia",
                    "--workdir",
                    str(self.workdir),
                    "--port",
                    str(self.port),
                    "--exit-with-parent",
                ],
                cwd=PROJECT_ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                env={**os.environ, "PYTHONWARNINGS": "ignore"},
            )
        ready: list[str] = []
        got_line = threading.Event()
        proc = self._proc

        def _read_stdout() -> None:
            # Keeps draining after READY so a chatty child can never block on a full pipe.
            assert proc.stdout is not None
            for line in proc.stdout:
                if not ready and line.startswith(READY_PREFIX):
                    ready.append(line.split(maxsplit=1)[1].strip())
                    got_line.set()
            got_line.set()

        self._drain = threading.Thread(target=_read_stdout, daemon=True, name="octavia-stdout")
        self._drain.start()
        settled = got_line.wait(self.start_timeout)  # READY, or stdout closed: it is dying
        if not ready:
            if settled:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(10)
            code = proc.poll()
            self._kill()
            what = "timed out" if code is None else f"exited with {code}"
            raise OctaviaStartError(
                f"devenv.octavia {what} before {READY_PREFIX} "
                f"(after {time.monotonic() - began:.1f}s); stderr tail:\n{self.stderr_tail()}"
            )
        self.startup_seconds = time.monotonic() - began
        self.endpoint = ready[0]
        self.port = int(self.endpoint.rstrip("/").rsplit(":", 1)[1])
        return self.endpoint

    def stop(self, timeout: float = 15.0) -> None:
        """Terminate the child (SIGTERM, then SIGKILL) and wait for it; idempotent."""
        if self._proc is None:
            return
        processes.stop(self._proc, timeout)
        self._close()

    def _kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._close()

    def _close(self) -> None:
        if self._drain is not None:
            self._drain.join(timeout=5)
            self._drain = None
        if self._proc is not None:
            for pipe in (self._proc.stdin, self._proc.stdout):
                if pipe is not None:
                    pipe.close()
        self._proc = None

    def stderr_tail(self, lines: int = 40) -> str:
        """Last lines of the child's stderr (plus the oslo log tail), for error messages."""
        parts = []
        for path in (self._stderr_path, self.workdir / "octavia.log"):
            if path.exists():
                with path.open(errors="replace") as fh:
                    tail = "".join(deque(fh, maxlen=lines))
                parts.append(f"--- {path.name} ---\n{tail}")
        return "\n".join(parts) or "(no output)"

    def close(self) -> None:
        """Stop the child. All its files are in ``workdir``; removing that is the caller's job.

        Nothing is left in /tmp: the no-op drivers' database is redirected into ``workdir``
        (see `noop_drivers`), so this never deletes another server's state.
        """
        self.stop()

    def __enter__(self) -> OctaviaServer:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
