"""What every local server launcher needs: a port to listen on, and a way to stop a process."""

from __future__ import annotations

import random
import socket
import subprocess
from pathlib import Path
from typing import Any

_HANDED_OUT: set[int] = set()
_EPHEMERAL = Path("/proc/sys/net/ipv4/ip_local_port_range")


def free_port() -> int:
    """A port free now, below the kernel's ephemeral range, that this process has not handed out
    before. Below the range: a port from it, free when asked for, can be taken as the source
    port of an outgoing connection (local clusters are polled several times a second) before
    the server binds it. Never twice: a server started on the first port may not have bound it
    yet when the next is asked for."""
    low = int(_EPHEMERAL.read_text().split()[0]) if _EPHEMERAL.exists() else 32768
    for port in random.sample(range(max(1024, low - 12000), low), min(4000, low - 1024)):
        if port in _HANDED_OUT:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise RuntimeError(f"no free port below the ephemeral range ({low}) on 127.0.0.1")


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
