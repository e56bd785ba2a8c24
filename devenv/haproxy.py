"""The real HAProxy in front of small local Prods, for tests and benchmarks.

- `ProdProcess`: one Prod, a small HTTP server in its own process, so that it can be killed
  (`SIGKILL`: its connections are reset, new ones refused) or frozen (`SIGSTOP`: the kernel
  queues a few connections, then drops new ones unanswered, as a dead node does) and started
  again on the same port. It answers `/` with its name, and headers saying which segment
  header and cookie reached it; its health path with 200, every other path with 404, but
  `/_drop`, on which it hangs up without an answer (as a Prod that dies with a request in hand).
  Given a certificate (`devenv.pki`), it serves HTTPS only, as a TLS endpoint on another
  cluster does, and records for each request the TLS version and the SNI it came with.
- `Resolver`: a DNS server that answers every A query with 127.0.0.1 (the cluster's DNS).
- `Edge`: `haproxy -W` (master-worker) on a rendered configuration; `apply` again reloads it.
- `ask`: one request through the edge, from a given local source address.

Run one Prod by hand::

    python -m devenv.haproxy prod --name A-1 --health-path /ready

It prints one line, ``PROD_READY <port>``, once it serves; with ``--cert B-1.crt --key B-1.key``
it serves HTTPS only.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from devenv.pki import Issued
from devenv.processes import free_port, stop
from model.placement import Fallbacks, Placement, Route

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
ROOT = Path(__file__).resolve().parent.parent
SEEN_SEGMENT = "X-Seen-Segment"
SEEN_COOKIE = "X-Seen-Cookie"


@dataclass(frozen=True, slots=True)
class Seen:
    """One request as a Prod received it: its path and Host, and over TLS its version and SNI."""

    path: str
    host: str
    tls: str = ""
    sni: str = ""


class ProdProcess:
    """One Prod in a child process, on a port it keeps across restarts; HTTPS with `tls`."""

    def __init__(
        self,
        name: str,
        health_path: str = "/healthz",
        backlog: int = 16,
        tls: Issued | None = None,
    ) -> None:
        self.name = name
        self.health_path = health_path
        self.backlog = backlog
        self.tls = tls
        self.port = 0
        self.proc: subprocess.Popen[str] | None = None
        self.start()

    def start(self) -> None:
        # Never port 0: the kernel may hand a child the port just handed to the edge, unbound yet.
        self.port = self.port or free_port()
        command = [sys.executable, "-m", "devenv.haproxy", "prod", "--name", self.name]
        command += ["--health-path", self.health_path, "--port", str(self.port)]
        command += ["--backlog", str(self.backlog)]
        if self.tls is not None:
            command += ["--cert", str(self.tls.cert), "--key", str(self.tls.key)]
        self.proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        if line[:1] != ["PROD_READY"]:
            raise RuntimeError(f"prod {self.name} did not start: {line}")
        self.port = int(line[1])

    def kill(self) -> None:
        """Dead at once: the kernel resets its connections and refuses new ones."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def freeze(self) -> None:
        """Alive to the kernel, dead to clients: its accept queue fills, then SYNs go unanswered."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait()

    def seen(self) -> list[Seen]:
        """Every request it has received (health checks and users'), in order."""
        return [Seen(**request) for request in self._read("/_seen")]

    def check_hosts(self) -> list[str]:
        """The `Host` headers its health checks came with, in order."""
        return [r.host for r in self.seen() if r.path == self.health_path]

    def drops(self) -> int:
        """How many requests to `/_drop` it has hung up on without an answer."""
        return int(self._read("/_drops"))

    def _read(self, path: str) -> Any:
        """The test's own look inside the Prod: over TLS, whatever certificate it serves."""
        conn: http.client.HTTPConnection
        if self.tls is None:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        else:
            unverified = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            unverified.check_hostname = False
            unverified.verify_mode = ssl.CERT_NONE
            conn = http.client.HTTPSConnection(
                "127.0.0.1", self.port, timeout=5, context=unverified
            )
        try:
            conn.request("GET", path)
            return json.loads(conn.getresponse().read())
        finally:
            conn.close()


class Prods:
    """Several Prods by name; `stop` ends every one of them."""

    def __init__(
        self,
        names: list[str],
        health_path: str = "/healthz",
        backlog: int = 16,
        tls: Mapping[str, Issued] | None = None,
    ) -> None:
        """`tls`: the Prods that serve HTTPS, each with its certificate."""
        self.by_name: dict[str, ProdProcess] = {}
        try:
            for name in names:
                self.by_name[name] = ProdProcess(name, health_path, backlog, (tls or {}).get(name))
        except BaseException:
            self.stop()
            raise

    def __getitem__(self, name: str) -> ProdProcess:
        return self.by_name[name]

    def port(self, name: str) -> int:
        return self.by_name[name].port

    def stop(self) -> None:
        for prod in self.by_name.values():
            prod.stop()


class Resolver:
    """A DNS server on 127.0.0.1 that answers every A query with 127.0.0.1 (the cluster's DNS)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        import dns.message
        import dns.rdatatype
        import dns.rrset

        while True:
            try:
                data, client = self.sock.recvfrom(4096)
            except OSError:
                return
            query = dns.message.from_wire(data)
            answer = dns.message.make_response(query)
            for question in query.question:
                if question.rdtype == dns.rdatatype.A:
                    answer.answer.append(
                        dns.rrset.from_text(question.name, 5, "IN", "A", "127.0.0.1")
                    )
            self.sock.sendto(answer.to_wire(), client)

    def close(self) -> None:
        self.sock.close()


class Edge:
    """A real HAProxy (master-worker) on a configuration file; `apply` starts or reloads it.

    A reload returns once a new worker serves the new configuration (the master CLI lists
    it), so what comes next meets the new configuration, never the old worker.
    """

    def __init__(self, workdir: Path, port: int) -> None:
        self.config = workdir / "haproxy.cfg"
        self.master = workdir / "master.sock"
        self.log = workdir / "haproxy.log"
        self.port = port
        self.resolver = Resolver()
        self.proc: subprocess.Popen[bytes] | None = None

    def apply(self, text: str) -> None:
        # Outside a Pod, resolv.conf names this machine's DNS; the local resolver replaces it.
        text = text.replace("parse-resolv-conf", f"nameserver local {self.resolver.address}")
        self.config.write_text(text)
        check = subprocess.run([HAPROXY, "-c", "-q", "-f", str(self.config)], capture_output=True)
        if check.returncode != 0:
            raise RuntimeError(f"haproxy -c refused the configuration: {check.stderr.decode()}")
        if self.proc is None:
            self._log_file = self.log.open("ab")
            self.proc = subprocess.Popen(
                [HAPROXY, "-W", "-db", "-S", str(self.master), "-f", str(self.config)],
                stdout=subprocess.DEVNULL,
                stderr=self._log_file,
            )
            self._wait(lambda: bool(self._workers()), "start a worker")
            self._wait(self._listening, f"listen on {self.port}")
            return
        before = self._workers()
        self.proc.send_signal(signal.SIGUSR2)  # master-worker reload
        self._wait(lambda: bool(self._workers() - before), "start a worker after a reload")

    def _workers(self) -> set[int]:
        """The current (not the old, soft-stopping) workers' process ids."""
        try:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(5)
                sock.connect(str(self.master))
                sock.sendall(b"show proc\n")
                answer = b""
                while not answer.endswith(b"\n\n") and (chunk := sock.recv(65536)):
                    answer += chunk  # the master's answer ends with an empty line
        except OSError:
            return set()
        current = answer.decode().partition("# workers\n")[2].partition("#")[0]
        return {int(line.split()[0]) for line in current.splitlines() if "worker" in line}

    def _listening(self) -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def _wait(self, done: Callable[[], bool], what: str) -> None:
        # Generous: on a loaded 2-core machine a reload has taken over 20 s.
        deadline = time.monotonic() + 60
        while not done():
            assert self.proc is not None
            if self.proc.poll() is not None:
                log = self.log.read_text(errors="replace")[-2000:]
                raise RuntimeError(
                    f"haproxy exited ({self.proc.returncode}) before it could {what}:\n{log}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"haproxy did not {what} within 60 s")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            self._log_file.close()
        self.resolver.close()


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: str
    headers: Mapping[str, str]

    @property
    def prod(self) -> str:
        """The Prod that answered, or `HTTP <status>` when none did."""
        return self.body if self.status == 200 else f"HTTP {self.status}"


def ask(
    port: int,
    headers: Mapping[str, str] | None = None,
    source: str = "127.0.0.1",
    method: str = "GET",
    path: str = "/",
    timeout: float = 90,
) -> Answer:
    """One request through the edge on a new connection, sent from `source` (any 127.x)."""
    conn = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=timeout, source_address=(source, 0)
    )
    try:
        conn.request(method, path, headers=dict(headers or {}))
        response = conn.getresponse()
        body = response.read().decode()
        return Answer(response.status, body, {k.lower(): v for k, v in response.getheaders()})
    finally:
        conn.close()


def loopback_routing(
    placement: Placement, fallbacks: Fallbacks, ports: Mapping[str, int], health_path: str
) -> dict[str, Any]:
    """The routing table's shape for placement's decision, each Prod on its loopback port."""

    def shape(routes: tuple[Route, ...]) -> list[dict[str, Any]]:
        return [
            {"prod": r.prod, "endpoint": f"http://127.0.0.1:{ports[r.prod]}", "weight": r.weight}
            for r in routes
        ]

    return {
        "healthPath": health_path,
        "segments": {
            s.segment: {"routes": shape(s.routes), "fallbacks": shape(fallbacks.routes[s.segment])}
            for s in placement.segments
            if s.routes
        },
    }


# --- the Prod process ---------------------------------------------------------------------


def _serve_prod(
    name: str, health_path: str, port: int, backlog: int, tls: ssl.SSLContext | None
) -> None:
    seen: list[dict[str, str]] = []
    drops = [0]

    class Handler(BaseHTTPRequestHandler):
        # Buffered, flushed once per answer: a Prod killed while answering has sent all of an
        # answer or none of it (which HAProxy may retry), never headers without their body.
        wbufsize = 1 << 16

        def setup(self) -> None:
            if isinstance(self.request, ssl.SSLSocket):
                # In the connection's own thread: a client that never finishes its handshake
                # (or refuses the certificate) holds up no one else.
                self.request.do_handshake()
            super().setup()

        def do_GET(self) -> None:
            if not self.path.startswith("/_"):
                seen.append(
                    {
                        "path": self.path,
                        "host": self.headers.get("Host", ""),
                        **_tls_of(self.request),
                    }
                )
            if self.path == health_path:
                self._answer(200, b"ok")
            elif self.path == "/_seen":
                self._answer(200, json.dumps(seen).encode())
            elif self.path == "/_drop":
                drops[0] += 1
                self.close_connection = True  # hang up with no answer
            elif self.path == "/_drops":
                self._answer(200, str(drops[0]).encode())
            elif self.path == "/":
                self._answer(
                    200,
                    name.encode(),
                    {
                        SEEN_SEGMENT: ",".join(self.headers.get_all("X-Hybrid-Segment") or []),
                        SEEN_COOKIE: "; ".join(self.headers.get_all("Cookie") or []),
                    },
                )
            else:
                self._answer(404, b"not found")

        do_POST = do_GET

        def _answer(self, status: int, body: bytes, headers: Mapping[str, str] = {}) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            return

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = backlog

        def get_request(self) -> tuple[socket.socket, Any]:
            connection, client = super().get_request()
            if tls is None:
                return connection, client
            return tls.wrap_socket(
                connection, server_side=True, do_handshake_on_connect=False
            ), client

        def handle_error(self, *_: object) -> None:
            return  # health checks and killed clients hang up, refused handshakes end here

    server = Server(("127.0.0.1", port), Handler)
    print(f"PROD_READY {server.server_address[1]}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    server.serve_forever()


SNI = "_hybrid_infra_sni"
"""Where the handshake leaves the name the client asked for, on the connection itself."""


def _serving_context(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)

    def remember(connection: Any, name: str | None, _: ssl.SSLContext) -> None:
        setattr(connection, SNI, name or "")

    context.sni_callback = remember
    return context


def _tls_of(connection: Any) -> dict[str, str]:
    """The TLS version and SNI of a connection; nothing for plain TCP."""
    if not isinstance(connection, ssl.SSLSocket):
        return {}
    return {"tls": connection.version() or "", "sni": getattr(connection, SNI, "")}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m devenv.haproxy")
    sub = parser.add_subparsers(dest="command", required=True)
    prod = sub.add_parser("prod", help="serve one Prod on 127.0.0.1")
    prod.add_argument("--name", required=True)
    prod.add_argument("--health-path", default="/healthz")
    prod.add_argument("--port", type=int, default=0)
    prod.add_argument("--backlog", type=int, default=16)
    prod.add_argument("--cert", help="serve HTTPS with this certificate (PEM) ...")
    prod.add_argument("--key", help="... and its key")
    args = parser.parse_args()
    tls = _serving_context(args.cert, args.key) if args.cert else None
    _serve_prod(args.name, args.health_path, args.port, args.backlog, tls)


if __name__ == "__main__":
    main()
