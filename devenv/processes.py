"""What every local server launcher needs: a port to listen on, and a way to stop a process."""

from __future__ import annotations

import socket
import subprocess
from typing import Any

_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A port free now that this process has not handed out before: the kernel often gives a
    just-closed port again at once (two servers asked for ports in a row then got one port), and
    a server started on the first may not have bound it yet when the next is asked for."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def stop(process: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout`; waits either way."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout)
