"""The edge proxy's configuration: a pure function of the routing table (properties), checked by
the real `haproxy -c`, and run by the real HAProxy (Debian package) in front of small local
HTTP servers standing for Prods: segments reach their Prods, unknown segments the default, a
routing change (a rollback, a drain) reloads with no failed request, and a Prod that just took
the new version ramps up. A small DNS server (dnspython) stands in for the cluster's DNS."""

from __future__ import annotations

import http.client
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import dns.message
import dns.rdatatype
import dns.rrset
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model.config import Prod, Segment
from model.edge_config import (
    LIVENESS_PATH,
    EdgeConfigError,
    EdgeSettings,
    liveness_frontend,
    render,
)
from model.placement import place
from tests.fixtures.program import synth_with
from tests.synthesis import CONFIGMAP, DEPLOYMENT, EDGE_PROXY, PDB, children_by_type
from tools.synth import Synthesis, synthesize

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
needs_haproxy = pytest.mark.skipif(
    not Path(HAPROXY).exists(), reason="haproxy not installed: run scripts/system-packages.sh"
)


def routing(segments: dict[str, list[tuple[str, int, int]]]) -> dict[str, Any]:
    """{segment: [(prod, port, weight)]} → the routing table's shape (endpoints on loopback)."""
    return {
        "segments": {
            name: {
                "routes": [
                    {"prod": p, "endpoint": f"http://127.0.0.1:{port}", "weight": w}
                    for p, port, w in routes
                ]
            }
            for name, routes in segments.items()
        }
    }


# --- the pure function --------------------------------------------------------------------


prods = st.dictionaries(
    st.sampled_from([f"P{i}" for i in range(1, 7)]),
    st.builds(Prod, cluster=st.sampled_from(["A", "B", "C"]), capacity=st.integers(100, 5000)),
    min_size=2,
    max_size=6,
)


@given(prods, st.data())
@settings(max_examples=60, deadline=None)
def test_every_segment_is_routed_exactly_once_and_drained_clusters_get_nothing(prods, data):
    names = sorted(prods)
    segments = tuple(
        Segment(name=f"s{i}", users=data.draw(st.integers(1, 50)), prods=(names[i % len(names)],))
        for i in range(data.draw(st.integers(1, 5)))
    )
    drained = data.draw(st.sets(st.sampled_from(["A", "B", "C"]), max_size=1))
    placement = place(prods, segments, frozenset(drained))
    table = {
        "segments": {
            s.segment: {
                "routes": [
                    {
                        "prod": r.prod,
                        "endpoint": f"http://{r.prod.lower()}:8080",
                        "weight": r.weight,
                    }
                    for r in s.routes
                ]
            }
            for s in placement.segments
            if s.routes
        }
    }
    if not table["segments"]:
        return
    default = sorted(table["segments"])[0]
    config = render(table, EdgeSettings(default_segment=default))
    rules = [line for line in config.splitlines() if line.strip().startswith("use_backend")]
    assert sorted(r.split()[-2] for r in rules) == sorted(table["segments"])
    servers = {line.split()[1] for line in config.splitlines() if line.strip().startswith("server")}
    for prod, spec in prods.items():
        if spec.cluster in drained:
            assert prod not in servers


def test_a_segment_without_a_prod_or_an_unknown_default_is_an_error():
    with pytest.raises(EdgeConfigError, match="segment 'a' has no route"):
        render({"segments": {"a": {"routes": []}}}, EdgeSettings(default_segment="a"))
    with pytest.raises(EdgeConfigError, match="default segment 'x' is not in the routing table"):
        render(routing({"a": [("P1", 1, 100)]}), EdgeSettings(default_segment="x"))


# --- the real HAProxy ---------------------------------------------------------------------


class Prods:
    """Small HTTP servers on 127.0.0.1, each answering with its Prod's name."""

    def __init__(self, names: list[str]) -> None:
        self.servers: dict[str, ThreadingHTTPServer] = {}
        for name in names:

            class Handler(BaseHTTPRequestHandler):
                prod = name

                def do_GET(self) -> None:
                    body = self.prod.encode()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

                def log_message(self, *_: object) -> None:
                    return

            server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
            server.daemon_threads = True
            server.handle_error = lambda *_: None  # type: ignore[method-assign]  # checks hang up
            threading.Thread(target=server.serve_forever, daemon=True).start()
            self.servers[name] = server

    def port(self, name: str) -> int:
        return int(self.servers[name].server_address[1])

    def close(self) -> None:
        for server in self.servers.values():
            server.shutdown()
            server.server_close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ask(port: int, segment: str | None) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/", headers={"X-Hybrid-Segment": segment} if segment else {})
        response = conn.getresponse()
        body = response.read().decode()
        return body if response.status == 200 else f"HTTP {response.status}"
    finally:
        conn.close()


class Resolver:
    """A DNS server on 127.0.0.1 that answers every A query with 127.0.0.1 (the cluster's DNS)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
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


@pytest.fixture
def edge(tmp_path: Path) -> Iterator[Any]:
    """`edge(table)` writes the configuration and starts (or reloads) a real HAProxy."""
    port = free_port()
    config = tmp_path / "haproxy.cfg"
    state: dict[str, Any] = {"proc": None}
    resolver = Resolver()

    def apply(table: dict[str, Any], slowstart: int = 1) -> int:
        text = render(
            table, EdgeSettings(default_segment="a", port=port, slowstart_seconds=slowstart)
        )
        # Outside a Pod, resolv.conf names this machine's DNS; the test's resolver replaces it.
        text = text.replace("parse-resolv-conf", f"nameserver test {resolver.address}")
        config.write_text(text)
        check = subprocess.run([HAPROXY, "-c", "-q", "-f", str(config)], capture_output=True)
        assert check.returncode == 0, check.stderr.decode()
        if state["proc"] is None:
            state["proc"] = subprocess.Popen(
                [HAPROXY, "-W", "-db", "-f", str(config)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                with socket.socket() as sock:
                    if sock.connect_ex(("127.0.0.1", port)) == 0:
                        break
                time.sleep(0.05)
        else:
            state["proc"].send_signal(signal.SIGUSR2)  # master-worker reload
        return port

    yield apply
    if state["proc"] is not None:
        state["proc"].terminate()
        state["proc"].wait(timeout=10)
    resolver.sock.close()


@needs_haproxy
def test_requests_reach_their_segments_prods_and_a_rollback_reloads_without_a_failure(edge):
    prods = Prods(["P1", "P2", "P3"])
    try:
        before = routing(
            {
                "a": [("P1", prods.port("P1"), 100)],
                "b": [("P2", prods.port("P2"), 50), ("P3", prods.port("P3"), 50)],
            }
        )
        port = edge(before)
        assert ask(port, "a") == "P1"
        assert Counter(ask(port, "b") for _ in range(20)) == {"P2": 10, "P3": 10}
        assert ask(port, "nobody-knows") == "P1" and ask(port, None) == "P1"

        # Roll segment b back to P1 (a Prod on the known-good version): a routing switch.
        failures: list[str] = []
        answers: list[str] = []
        stop = threading.Event()

        def traffic() -> None:
            while not stop.is_set():
                try:
                    answers.append(ask(port, "b"))
                except OSError as error:
                    failures.append(repr(error))

        loop = threading.Thread(target=traffic)
        loop.start()
        time.sleep(0.3)
        switched = time.monotonic()
        edge(routing({"a": [("P1", prods.port("P1"), 100)], "b": [("P1", prods.port("P1"), 100)]}))
        while time.monotonic() - switched < 10 and (not answers or answers[-1] != "P1"):
            time.sleep(0.01)
        moved = time.monotonic() - switched
        time.sleep(0.3)
        stop.set()
        loop.join()
        assert failures == [] and all(a in ("P1", "P2", "P3") for a in answers), failures
        assert answers[-1] == "P1" and moved < 5, f"traffic moved after {moved:.2f} s"
        print(
            f"rollback: {len(answers)} requests, 0 failed, traffic on P1 {moved:.2f} s after reload"
        )
    finally:
        prods.close()


@needs_haproxy
def test_a_prod_that_just_took_the_new_version_ramps_up_under_slowstart(edge):
    """P2 is warming (latest wave), P1 steady: P2's share climbs from near 0 to its half."""
    prods = Prods(["P1", "P2"])
    try:
        table = routing({"a": [("P1", prods.port("P1"), 50), ("P2", prods.port("P2"), 50)]})
        warming = table["segments"]["a"]["routes"][1]
        # A name the host's resolver knows too: without the ramp, HAProxy would start it at once.
        warming.update(endpoint=f"http://localhost:{prods.port('P2')}", warming=True)
        port = edge(table, slowstart=4)
        shares = []
        for _ in range(6):
            answers: Counter[str] = Counter()
            started = time.monotonic()
            while time.monotonic() - started < 1:
                answers[ask(port, "a")] += 1
            assert set(answers) <= {"P1", "P2"}, answers
            shares.append(answers["P2"] / answers.total())
        print("P2 share per second:", " ".join(f"{s:.2f}" for s in shares))
        assert shares[0] < 0.25, shares  # without the ramp it takes half at once
        assert shares[-1] > 0.4, shares
        assert shares[0] < shares[2] < shares[-1] + 0.05, shares
    finally:
        prods.close()


def test_only_a_warming_prod_beside_a_steady_one_waits_for_the_resolver():
    table = routing({"a": [("P1", 1, 50), ("P2", 2, 50)], "b": [("P3", 3, 100)]})
    table["segments"]["a"]["routes"][1]["warming"] = True
    table["segments"]["b"]["routes"][0]["warming"] = True
    servers = {
        line.split()[1]: line
        for line in render(table, EdgeSettings(default_segment="a")).splitlines()
        if line.strip().startswith("server ")
    }
    assert servers["P2"].endswith("init-addr none")
    # Alone in its backend, ramping P3 would change no share and only delay its first request.
    assert "init-addr" not in servers["P1"] and "init-addr" not in servers["P3"]


# --- the program's edge proxies (mocks: the program's shape), their configs by real haproxy -c


@needs_haproxy
def test_every_hosting_cluster_runs_a_proxy_whose_config_haproxy_accepts(tmp_path):
    result = synthesize("prod")
    assert {r.name for r in result.of_type(EDGE_PROXY)} == {f"{c}-edge-proxy" for c in "ABC"}
    for cluster in "ABC":
        parts = children_by_type(result, EDGE_PROXY, f"{cluster}-edge-proxy")
        config = parts[CONFIGMAP].inputs["data"]["haproxy.cfg"]
        path = tmp_path / f"{cluster}.cfg"
        path.write_text(config)
        check = subprocess.run([HAPROXY, "-c", "-q", "-f", str(path)], capture_output=True)
        assert check.returncode == 0, check.stderr.decode()
        # Prods on this cluster by their Service, the others at their internal load balancer.
        assert f"app.prod-{cluster.lower()}-1.svc.cluster.local:8080" in config
        others = [c for c in "ABC" if c != cluster]
        for other in others:
            assert f"{other.lower()}-1-service.lb.mock:8080" in config
        strategy = parts[DEPLOYMENT].inputs["spec"]["strategy"]["rollingUpdate"]
        assert strategy["maxUnavailable"] == 0
        assert parts[PDB].inputs["spec"]["minAvailable"] == 1
        (container,) = parts[DEPLOYMENT].inputs["spec"]["template"]["spec"]["containers"]
        # A command works on every Kubernetes version; the `sleep` action needs 1.30.
        assert container["lifecycle"]["preStop"] == {"exec": {"command": ["sleep", "15"]}}


def test_a_drain_changes_every_other_proxys_config_and_so_rolls_it():
    """The drained cluster's own proxy is frozen (tests/test_prods.py, drained clusters)."""

    def mounted(result: Synthesis, cluster: str) -> str:
        parts = children_by_type(result, EDGE_PROXY, f"{cluster}-edge-proxy")
        (volume,) = parts[DEPLOYMENT].inputs["spec"]["template"]["spec"]["volumes"]
        return str(volume["configMap"]["name"])

    before = synthesize("prod")
    after = synth_with(lambda raw: raw["clusters"]["C"].update(drained=True))
    for cluster in "AB":
        assert mounted(before, cluster) != mounted(after, cluster)
    frozen = children_by_type(after, EDGE_PROXY, "C-edge-proxy")[DEPLOYMENT]
    assert frozen.ignore_changes == ("*",)


@needs_haproxy
def test_the_liveness_frontend_answers_while_every_prod_is_down(tmp_path):
    """The kubelet's liveness probe must not restart proxies because Prods are down: HAProxy
    answers `/livez` itself while the traffic port answers 503 (real HAProxy 2.6)."""
    traffic, liveness = free_port(), free_port()
    dead = free_port()  # nothing listens: the only Prod is down
    table = routing({"a": [("P1", dead, 100)]})
    text = render(table, EdgeSettings(default_segment="a", port=traffic))
    text = text.replace("parse-resolv-conf", "nameserver none 127.0.0.1:53")
    config = tmp_path / "haproxy.cfg"
    config.write_text(text + liveness_frontend(port=liveness))
    proc = subprocess.Popen(
        [HAPROXY, "-db", "-f", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", liveness)) == 0:
                    break
            time.sleep(0.05)
        assert ask(traffic, "a") == "HTTP 503"
        conn = http.client.HTTPConnection("127.0.0.1", liveness, timeout=5)
        conn.request("GET", LIVENESS_PATH)
        assert conn.getresponse().status == 200
        conn.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
