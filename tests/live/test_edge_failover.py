"""The real HAProxy (Debian package) in front of small local Prods, each its own process
(`devenv/haproxy.py`): segments reach their Prods, unknown segments the default, a routing change
reloads with no failed request, a Prod that just took the new version ramps up, a killed Prod's
segment goes to its fallback with no failed request, checks ask the health path with the Host the
Prod expects, only trusted sources choose a segment, the program's proxy configs pass the real
`haproxy -c`, and with `edge.tls` a Prod on another cluster is reached over verified TLS while one
presenting a certificate from another CA or for another name gets no request (Prods serving HTTPS
with certificates from throwaway CAs, `devenv/pki.py`).
A small DNS server (dnspython) stands in for the cluster's DNS."""

from __future__ import annotations

import http.client
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import pytest

from devenv.haproxy import (
    HAPROXY,
    SEEN_COOKIE,
    SEEN_SEGMENT,
    Edge,
    Prods,
    ask,
)
from devenv.processes import free_port
from model.edge_config import (
    CA_FILE,
    LIVENESS_PATH,
    EdgeSettings,
    liveness_frontend,
    render,
)
from tests.fixtures.program import synth_with
from tests.support.edge import routing, secret_value, servers_of, with_tls
from tests.support.synthesis import CONFIGMAP, DEPLOYMENT, EDGE_PROXY, PDB, SECRET, children_by_type
from tools.synth import synthesize

needs_haproxy = pytest.mark.skipif(
    not Path(HAPROXY).exists(), reason="haproxy not installed: run scripts/system-packages.sh"
)

# --- the real HAProxy ---------------------------------------------------------------------


@pytest.fixture
def edge(tmp_path: Path) -> Iterator[Callable[..., int]]:
    """`edge(table, **settings)` renders the configuration and starts (or reloads) HAProxy."""
    port = free_port()
    running = Edge(tmp_path, port)

    def apply(table: dict[str, Any], **settings: Any) -> int:
        # The test's own requests come from 127.0.0.1: the source that sets the segment.
        settings = {
            "default_segment": "a",
            "slowstart_seconds": 1,
            "trusted_sources": [ip_network("127.0.0.1/32")],
            **settings,
        }
        running.apply(render(table, EdgeSettings(port=port, **settings)))
        return port

    yield apply
    running.stop()


@pytest.fixture
def prods_of() -> Iterator[Callable[..., Prods]]:
    """`prods_of(["P1", "P2"], health_path=...)`: Prod processes, stopped after the test."""
    started: list[Prods] = []

    def start(names: list[str], **options: Any) -> Prods:
        started.append(Prods(names, **options))
        return started[-1]

    yield start
    for prods in started:
        prods.stop()


def until(answer: Callable[[], str], expected: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while (got := answer()) != expected:
        assert time.monotonic() < deadline, f"still {got!r} after {seconds} s, not {expected!r}"
        time.sleep(0.1)


class Load:
    """Requests to one segment, back to back from a few threads, each answer kept in order."""

    def __init__(self, port: int, segment: str, threads: int = 3) -> None:
        self.answers: list[tuple[float, str]] = []
        self.stop = threading.Event()
        self.port, self.segment = port, segment
        self.threads = [threading.Thread(target=self._run) for _ in range(threads)]
        for thread in self.threads:
            thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                got = ask(self.port, {"X-Hybrid-Segment": self.segment}, timeout=30).prod
            except (OSError, http.client.HTTPException) as error:
                got = f"failed: {error!r}"
            self.answers.append((time.monotonic(), got))

    def since(self, moment: float) -> list[str]:
        return [got for at, got in list(self.answers) if at >= moment]

    def finish(self) -> list[str]:
        self.stop.set()
        for thread in self.threads:
            thread.join()
        return [got for _, got in self.answers]


@needs_haproxy
def test_requests_reach_their_segments_prods_and_a_rollback_reloads_without_a_failure(
    edge, prods_of
):
    prods = prods_of(["P1", "P2", "P3"])
    before = routing(
        {
            "a": [("P1", prods.port("P1"), 100)],
            "b": [("P2", prods.port("P2"), 50), ("P3", prods.port("P3"), 50)],
        }
    )
    port = edge(before)
    assert ask(port, {"X-Hybrid-Segment": "a"}).prod == "P1"
    answers = Counter(ask(port, {"X-Hybrid-Segment": "b"}).prod for _ in range(20))
    assert answers == {"P2": 10, "P3": 10}
    assert ask(port, {"X-Hybrid-Segment": "nobody-knows"}).prod == "P1"
    assert ask(port).prod == "P1"

    # Roll segment b back to P1 (a Prod on the known-good version): a routing switch.
    load = Load(port, "b", threads=1)
    time.sleep(0.3)
    switched = time.monotonic()
    edge(routing({"a": [("P1", prods.port("P1"), 100)], "b": [("P1", prods.port("P1"), 100)]}))
    until(lambda: (load.since(switched) or ["-"])[-1], "P1", seconds=5)
    moved = time.monotonic() - switched
    time.sleep(0.3)
    seen = load.finish()
    assert set(seen) <= {"P1", "P2", "P3"}, Counter(seen)
    print(f"rollback: {len(seen)} requests, 0 failed, traffic on P1 {moved:.2f} s after reload")


@needs_haproxy
def test_a_prod_that_just_took_the_new_version_ramps_up_under_slowstart(edge, prods_of):
    """P2 is warming (latest wave), P1 steady: P2's share climbs from near 0 to its half."""
    prods = prods_of(["P1", "P2"])
    table = routing({"a": [("P1", prods.port("P1"), 50), ("P2", prods.port("P2"), 50)]})
    warming = table["segments"]["a"]["routes"][1]
    # A name the host's resolver knows too: without the ramp, HAProxy would start it at once.
    warming.update(endpoint=f"http://localhost:{prods.port('P2')}", warming=True)
    port = edge(table, slowstart_seconds=4)
    shares = []
    for _ in range(6):
        answers: Counter[str] = Counter()
        started = time.monotonic()
        while time.monotonic() - started < 1:
            answers[ask(port, {"X-Hybrid-Segment": "a"}).prod] += 1
        assert set(answers) <= {"P1", "P2"}, answers
        shares.append(answers["P2"] / answers.total())
    print("P2 share per second:", " ".join(f"{s:.2f}" for s in shares))
    assert shares[0] < 0.25, shares  # without the ramp it takes half at once
    assert shares[-1] > 0.4, shares
    assert shares[0] < shares[2] < shares[-1] + 0.05, shares


@needs_haproxy
def test_a_killed_prod_s_segment_goes_to_its_fallback_without_a_failed_request(edge, prods_of):
    """The only Prod of segment a dies under load: its fallback (a backup server) answers
    every request, none fails; when the Prod is back, the segment returns to it. Timings are
    measured by bench/edge_failover.py, not asserted here."""
    prods = prods_of(["P1", "P2"])
    port = edge(
        routing({"a": [("P1", prods.port("P1"), 100)]}, {"a": [("P2", prods.port("P2"), 100)]})
    )
    until(lambda: ask(port, {"X-Hybrid-Segment": "a"}).prod, "P1")
    load = Load(port, "a")
    time.sleep(0.5)
    killed = time.monotonic()
    prods["P1"].kill()
    until(lambda: (load.since(killed) or ["-"])[-1], "P2")
    time.sleep(0.5)
    back = time.monotonic()
    prods["P1"].start()
    until(lambda: (load.since(back) or ["-"])[-1], "P1")
    time.sleep(0.3)
    answers = load.finish()
    assert set(answers) == {"P1", "P2"}, Counter(answers)
    print(f"failover: {Counter(answers)}")


@needs_haproxy
def test_only_idempotent_requests_are_replayed_after_the_server_may_have_seen_them(edge, prods_of):
    """P1 closes the connection on a request without answering, as a Prod that dies with it in
    hand: HAProxy sends a GET again (RFC 9110 lets any client repeat an idempotent request),
    a POST never (the Prod may have acted on it)."""
    prods = prods_of(["P1"])
    port = edge(routing({"a": [("P1", prods.port("P1"), 100)]}))
    until(lambda: ask(port, {"X-Hybrid-Segment": "a"}).prod, "P1")
    assert ask(port, method="POST", path="/_drop").status == 502
    assert prods["P1"].drops() == 1
    assert ask(port, method="GET", path="/_drop").status == 502
    assert prods["P1"].drops() == 1 + 4  # the request and its 3 retries


@needs_haproxy
def test_checks_ask_the_health_path_with_the_host_each_prod_expects(edge, prods_of):
    """P1 runs on this cluster (its Service), P2 on another (its address there); both answer
    only `/ready`, so checks on `/healthz` would put every server down and give 503."""
    prods = prods_of(["P1", "P2"], health_path="/ready")
    table = routing({"a": [("P1", prods.port("P1"), 100)]}, {"a": [("P2", 0, 100)]}, "/ready")
    local, remote = table["segments"]["a"]["routes"][0], table["segments"]["a"]["fallbacks"][0]
    local.update(endpoint=f"http://app.prod-p1.svc.cluster.local:{prods.port('P1')}", cluster="A")
    remote.update(cluster="B")
    address = f"p2.b.internal.example.net:{prods.port('P2')}"
    port = edge(table, cluster="A", addresses={"P2": address})
    until(lambda: ask(port, {"X-Hybrid-Segment": "a"}).prod, "P1")
    time.sleep(2.5)  # at least one check of each server
    assert set(prods["P1"].check_hosts()) == {"app.prod-p1.svc.cluster.local"}
    assert set(prods["P2"].check_hosts()) == {"p2.b.internal.example.net"}
    prods["P1"].kill()
    until(lambda: ask(port, {"X-Hybrid-Segment": "a"}).prod, "P2")


@needs_haproxy
@pytest.mark.parametrize("mode", ["header", "cookie"])
def test_only_a_trusted_source_chooses_a_segment_and_a_forged_one_never_reaches_a_prod(
    edge, prods_of, mode
):
    prods = prods_of(["P1", "P2"])
    port = edge(
        routing({"a": [("P1", prods.port("P1"), 100)], "staff": [("P2", prods.port("P2"), 100)]}),
        trusted_sources=[ip_network("127.0.0.2/32")],
        cookie="seg" if mode == "cookie" else None,
    )
    chosen = {"X-Hybrid-Segment": "staff"}
    if mode == "cookie":
        chosen = {"Cookie": "theme=dark; seg=staff; lang=ja", "X-Hybrid-Segment": "staff"}
    until(lambda: ask(port, chosen, source="127.0.0.2").prod, "P2")

    trusted = ask(port, chosen, source="127.0.0.2")
    assert trusted.headers[SEEN_SEGMENT.lower()] == "staff"
    forged = ask(port, chosen, source="127.0.0.3")
    assert forged.prod == "P1"  # the default segment's Prod
    assert forged.headers[SEEN_SEGMENT.lower()] == ""
    if mode == "cookie":
        assert trusted.headers[SEEN_COOKIE.lower()] == "theme=dark; seg=staff; lang=ja"
        assert forged.headers[SEEN_COOKIE.lower()] == "theme=dark; lang=ja"
        alone = ask(port, {"Cookie": "seg=staff"}, source="127.0.0.3")
        assert (alone.prod, alone.headers[SEEN_COOKIE.lower()]) == ("P1", "")


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
        assert ask(traffic, timeout=10).status == 503
        conn = http.client.HTTPConnection("127.0.0.1", liveness, timeout=5)
        conn.request("GET", LIVENESS_PATH)
        assert conn.getresponse().status == 200
        conn.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# --- TLS to Prods on other clusters (edge.tls) -----------------------------------------------


def across(
    table: dict[str, Any], remote: dict[str, str], prods: Prods
) -> tuple[dict[str, Any], dict[str, str]]:
    """The table as the proxy on cluster A sees it: the Prods in `remote` ({prod: host}) run on
    B and are reached at `host:<their port>`; every other Prod runs on A, here."""
    for segment in table["segments"].values():
        for route in segment["routes"] + segment["fallbacks"]:
            route["cluster"] = "B" if route["prod"] in remote else "A"
    return table, {prod: f"{host}:{prods.port(prod)}" for prod, host in remote.items()}


@needs_haproxy
def test_each_proxy_mounts_the_ca_read_only_and_haproxy_accepts_its_tls_configuration(
    pki, tmp_path
):
    """mocks: the program's shape. The configuration is checked by the real `haproxy -c` with
    the CA the Secret holds, at the path the Pod mounts it (here a directory of the test's)."""
    ca, _ = pki
    pem = ca.cert.read_text()
    result = synth_with(with_tls(pem))
    for cluster in "ABC":
        parts = children_by_type(result, EDGE_PROXY, f"{cluster}-edge-proxy")
        secret = parts[SECRET].inputs
        assert secret_value(secret["stringData"])["ca.crt"] == pem
        assert secret["immutable"] is True
        spec = parts[DEPLOYMENT].inputs["spec"]["template"]["spec"]
        volume = next(v for v in spec["volumes"] if "secret" in v)
        assert volume["secret"]["secretName"] == secret["metadata"]["name"]
        (container,) = spec["containers"]
        mount = next(m for m in container["volumeMounts"] if m["name"] == volume["name"])
        assert mount == {
            "name": volume["name"],
            "mountPath": "/usr/local/etc/haproxy-tls",
            "readOnly": True,
        }
        config = parts[CONFIGMAP].inputs["data"]["haproxy.cfg"]
        servers = {n: line for b in servers_of(config).values() for n, line in b.items()}
        for prod, line in servers.items():
            here = prod.startswith(cluster)
            assert (f" ssl verify required ca-file {CA_FILE} " in line) != here, line
        mounted = tmp_path / cluster
        mounted.mkdir()
        (mounted / "ca.crt").write_text(secret_value(secret["stringData"])["ca.crt"])
        path = tmp_path / f"{cluster}.cfg"
        path.write_text(config.replace(CA_FILE, str(mounted / "ca.crt")))
        check = subprocess.run([HAPROXY, "-c", "-q", "-f", str(path)], capture_output=True)
        assert check.returncode == 0, check.stderr.decode()


@needs_haproxy
def test_the_edge_reaches_a_tls_prod_on_another_cluster_and_checks_it_over_tls_too(
    edge, prods_of, pki, tmp_path
):
    """P1 runs on B and serves HTTPS only, with a certificate for its address from the CA of
    edge.tls: users reach it, and it saw their requests and the health checks over TLS, with
    its host name as SNI."""
    ca, _ = pki
    host = "p1.b.example.net"
    prods = prods_of(["P1"], tls={"P1": ca.issue(tmp_path / "p1", host, [host])})
    table, addresses = across(routing({"a": [("P1", 0, 100)]}), {"P1": host}, prods)
    port = edge(table, cluster="A", addresses=addresses, ca_file=str(ca.cert))
    until(lambda: ask(port, {"X-Hybrid-Segment": "a"}).prod, "P1")
    time.sleep(2.5)  # at least one check after the first answer
    seen = prods["P1"].seen()
    users = [r for r in seen if r.path == "/"]
    checks = [r for r in seen if r.path == "/healthz"]
    assert users and checks
    assert {(r.tls.startswith("TLSv1."), r.sni) for r in users + checks} == {(True, host)}
    assert {r.host for r in checks} == {host}


@needs_haproxy
@pytest.mark.parametrize("wrong", ["another CA", "another name"])
def test_a_prod_with_a_certificate_from_another_ca_or_for_another_name_never_gets_a_user(
    edge, prods_of, pki, tmp_path, wrong
):
    """P1 on B presents a certificate the proxy must refuse; P3 on B a right one. Segment a
    falls back to P2 (here), `alone` has only P1 and gets the edge's 503: P1 receives no
    request at all, neither a user's nor a health check."""
    ca, other = pki
    p1, p3 = "p1.b.example.net", "p3.b.example.net"
    # HAProxy matches the common name as well as the alternative names: both are wrong here.
    signer, name = (other, p1) if wrong == "another CA" else (ca, "p9.b.example.net")
    issued = {
        "P1": signer.issue(tmp_path / "p1", name, [name]),
        "P3": ca.issue(tmp_path / "p3", p3, [p3]),
    }
    prods = prods_of(["P1", "P2", "P3"], tls=issued)
    table, addresses = across(
        routing(
            {"a": [("P1", 0, 100)], "alone": [("P1", 0, 100)], "good": [("P3", 0, 100)]},
            {"a": [("P2", prods.port("P2"), 100)]},
        ),
        {"P1": p1, "P3": p3},
        prods,
    )
    port = edge(table, cluster="A", addresses=addresses, ca_file=str(ca.cert))
    until(lambda: ask(port, {"X-Hybrid-Segment": "good"}).prod, "P3")
    answers = [ask(port, {"X-Hybrid-Segment": "a"}).prod for _ in range(10)]
    # Until a check or a request has found the certificate wrong, P1 counts as up; HAProxy 2.6
    # retries a refused handshake on the same server, so the request that finds out gets 503.
    assert set(answers) <= {"P2", "HTTP 503"} and answers.count("HTTP 503") <= 1, answers
    assert answers[-1] == "P2"
    assert ask(port, {"X-Hybrid-Segment": "alone"}, timeout=30).status == 503
    time.sleep(2.5)  # checks keep knocking, and keep being refused
    assert prods["P1"].seen() == []
