"""The edge proxy's configuration: a pure function of the routing table (properties), checked by
the real `haproxy -c`, and run by the real HAProxy (Debian package) in front of small local
Prods, each its own process (`devenv/haproxy.py`): segments reach their Prods, unknown segments
the default, a routing change reloads with no failed request, a Prod that just took the new
version ramps up, a killed Prod's segment goes to its fallback with no failed request, checks
ask the health path with the Host the Prod expects, only trusted sources choose a segment, and
with `edge.tls` a Prod on another cluster is reached over verified TLS while one presenting a
certificate from another CA or for another name gets no request (Prods serving HTTPS with
certificates from throwaway CAs, `devenv/pki.py`).
A small DNS server (dnspython) stands in for the cluster's DNS."""

from __future__ import annotations

import http.client
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pulumi.runtime import rpc

from devenv.haproxy import (
    HAPROXY,
    SEEN_COOKIE,
    SEEN_SEGMENT,
    Edge,
    Prods,
    ask,
    loopback_routing,
)
from devenv.pki import ThrowawayCa
from devenv.processes import free_port
from model.config import ConfigError, ProdSpec, Segment
from model.edge_config import (
    CA_FILE,
    LIVENESS_PATH,
    EdgeConfigError,
    EdgeSettings,
    liveness_frontend,
    render,
)
from model.placement import fallbacks, place
from model.stack import parse
from model.stackfile import SECRET_PLACEHOLDER
from tests.fixtures.program import raw_of, synth_with
from tests.synthesis import CONFIGMAP, DEPLOYMENT, EDGE_PROXY, PDB, SECRET, children_by_type
from tools.synth import Synthesis, synthesize

needs_haproxy = pytest.mark.skipif(
    not Path(HAPROXY).exists(), reason="haproxy not installed: run scripts/system-packages.sh"
)
Routes = list[tuple[str, int, int]]


def routing(
    segments: dict[str, Routes],
    fallback: dict[str, Routes] | None = None,
    health_path: str = "/healthz",
) -> dict[str, Any]:
    """{segment: [(prod, port, weight)]} → the routing table's shape (endpoints on loopback)."""

    def routes(of: Routes) -> list[dict[str, Any]]:
        return [
            {"prod": p, "endpoint": f"http://127.0.0.1:{port}", "weight": w} for p, port, w in of
        ]

    return {
        "healthPath": health_path,
        "segments": {
            name: {"routes": routes(of), "fallbacks": routes((fallback or {}).get(name, []))}
            for name, of in segments.items()
        },
    }


def servers_of(config: str) -> dict[str, dict[str, str]]:
    """Backend → server name → its `server` line."""
    found: dict[str, dict[str, str]] = {}
    backend = ""
    for line in config.splitlines():
        if line.startswith("backend "):
            backend = line.split()[1]
        elif line.strip().startswith("server "):
            found.setdefault(backend, {})[line.split()[1]] = line.strip()
    return found


# --- the pure function --------------------------------------------------------------------


prods = st.dictionaries(
    st.sampled_from([f"P{i}" for i in range(1, 7)]),
    st.builds(ProdSpec, cluster=st.sampled_from(["A", "B", "C"]), capacity=st.integers(100, 5000)),
    min_size=2,
    max_size=6,
)


def table_of(prods: dict[str, ProdSpec], segments: tuple[Segment, ...], drained: set[str]) -> Any:
    """The routing table the program would publish, with fallbacks (every Prod on one port)."""
    return loopback_routing(
        place(prods, segments, frozenset(drained)),
        fallbacks(prods, segments, frozenset(drained)),
        dict.fromkeys(prods, 8080),
        "/ready",
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
    table = table_of(prods, segments, drained)
    if not table["segments"]:
        return
    default = sorted(table["segments"])[0]
    config = render(table, EdgeSettings(default_segment=default))
    rules = [line for line in config.splitlines() if line.strip().startswith("use_backend")]
    assert sorted(r.split()[-2] for r in rules) == sorted(table["segments"])
    servers = {name for backend in servers_of(config).values() for name in backend}
    for prod, spec in prods.items():
        if spec.cluster in drained:
            assert prod not in servers


@given(prods, st.data())
@settings(max_examples=60, deadline=None)
def test_a_segments_fallbacks_are_backup_servers_beside_its_routes(prods, data):
    names = sorted(prods)
    segments = tuple(
        Segment(name=f"s{i}", users=data.draw(st.integers(1, 50)), prods=(names[i % len(names)],))
        for i in range(data.draw(st.integers(1, 5)))
    )
    table = table_of(prods, segments, set())
    default = sorted(table["segments"])[0]
    config = render(table, EdgeSettings(default_segment=default))
    for segment, spec in table["segments"].items():
        lines = servers_of(config)[f"segment_{segment}"]
        primaries = {r["prod"] for r in spec["routes"]}
        backups = {r["prod"] for r in spec["fallbacks"]}
        assert {n for n, line in lines.items() if not line.endswith(" backup")} == primaries
        assert {n for n, line in lines.items() if line.endswith(" backup")} == backups
    # Fast mark-down only where a backend has another server to go to.
    for block in config.split("\nbackend ")[1:]:
        servers = [line for line in block.splitlines() if line.strip().startswith("server ")]
        assert ("on-error mark-down" in block) == (len(servers) > 1), block


def test_a_segment_without_a_prod_or_an_unknown_default_is_an_error():
    with pytest.raises(EdgeConfigError, match="segment 'a' has no route"):
        render(routing({"a": []}), EdgeSettings(default_segment="a"))
    with pytest.raises(EdgeConfigError, match="default segment 'x' is not in the routing table"):
        render(routing({"a": [("P1", 1, 100)]}), EdgeSettings(default_segment="x"))


def test_only_a_warming_prod_beside_a_steady_one_waits_for_the_resolver():
    table = routing({"a": [("P1", 1, 50), ("P2", 2, 50)], "b": [("P3", 3, 100)]})
    table["segments"]["a"]["routes"][1]["warming"] = True
    table["segments"]["b"]["routes"][0]["warming"] = True
    servers = servers_of(render(table, EdgeSettings(default_segment="a")))
    assert servers["segment_a"]["P2"].endswith("init-addr none")
    # Alone in its backend, ramping P3 would change no share and only delay its first request.
    assert "init-addr" not in servers["segment_a"]["P1"]
    assert "init-addr" not in servers["segment_b"]["P3"]


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


def test_the_prod_stack_s_segments_fall_back_where_a_drain_would_send_them():
    """C's segments fall back where draining C sends them; A's and B's single-Prod segments
    fit nowhere else, and the preview says so."""
    result = synthesize("prod")
    config = children_by_type(result, EDGE_PROXY, "A-edge-proxy")[CONFIGMAP].inputs["data"][
        "haproxy.cfg"
    ]
    drained = synth_with(lambda raw: raw["clusters"]["C"].update(drained=True))
    moved = drained.outputs["routing"]["segments"]
    servers = servers_of(config)
    for segment in ("trial", "staff"):
        (route,) = moved[segment]["routes"]
        assert servers[f"segment_{segment}"][route["prod"]].endswith(" backup")
    assert all(not line.endswith(" backup") for line in servers["segment_enterprise"].values())
    warnings = [line for line in result.logs if "has no fallback" in line]
    assert len(warnings) == 2
    assert "segment consumer-east (8800 users)" in warnings[0] and "if A fails" in warnings[0]
    assert "segment consumer-west (7900 users)" in warnings[1] and "if B fails" in warnings[1]


def test_checks_use_the_app_s_health_path():
    result = synth_with(lambda raw: raw["app"].update(healthPath="/ready"))
    config = children_by_type(result, EDGE_PROXY, "B-edge-proxy")[CONFIGMAP].inputs["data"][
        "haproxy.cfg"
    ]
    checks = [line for line in config.splitlines() if "http-check send" in line]
    assert checks and all(" uri /ready ver HTTP/1.1 hdr Host " in line for line in checks)


def test_a_health_path_that_would_break_the_proxy_configuration_is_a_config_error():
    raw = raw_of()
    raw["app"]["healthPath"] = "/ready now#1"
    with pytest.raises(ConfigError) as error:
        parse(raw)
    (problem,) = error.value.problems
    assert problem.startswith("hybrid-infra:app.healthPath: String should match pattern")


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


def test_trusted_sources_that_are_not_networks_are_config_errors_by_key_path():
    raw = raw_of()
    raw["edge"]["trustedSources"] = ["10.20.0.0/16", "10.20.0.1/16", "identity-proxy", 7]
    with pytest.raises(ConfigError) as error:
        parse(raw)
    assert error.value.problems == [
        "hybrid-infra:edge.trustedSources[1]: Value error, '10.20.0.1/16' has host bits set; "
        "write the range as 10.20.0.0/16",
        "hybrid-infra:edge.trustedSources[2]: Value error, 'identity-proxy' is not a CIDR such "
        "as 10.20.0.0/16 or fd00:20::/32",
        "hybrid-infra:edge.trustedSources[3]: Value error, 7 is not a CIDR such as "
        "10.20.0.0/16 or fd00:20::/32",
    ]


def test_segments_that_no_trusted_source_can_choose_are_a_config_error():
    """With no trusted source every request goes to the default segment: the other segments'
    users would all land on its Prods. One segment needs no source."""
    raw = raw_of()
    raw["edge"]["trustedSources"] = []
    with pytest.raises(ConfigError) as error:
        parse(raw)
    (problem,) = error.value.problems
    assert problem.startswith(
        "hybrid-infra:edge.trustedSources: the segment (X-Hybrid-Segment) is believed only from "
        "these networks and none is listed, so every request would go to consumer-west and "
        "consumer-east, enterprise, staff, trial would get no user"
    )
    raw["segments"] = [s for s in raw["segments"] if s["name"] == "consumer-west"]
    raw["prods"] = {"B-2": raw["prods"]["B-2"]}
    raw["edge"]["addresses"] = {}
    raw["release"]["wave"] = 1
    parse(raw)


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


@pytest.fixture
def pki(tmp_path: Path) -> tuple[ThrowawayCa, ThrowawayCa]:
    """The CA of `edge.tls`, and another that no proxy trusts."""
    return (
        ThrowawayCa(tmp_path / "ca.crt", "edge.tls CA"),
        ThrowawayCa(tmp_path / "other-ca.crt", "some other CA"),
    )


def test_prods_on_other_clusters_are_dialled_over_verified_tls_and_prods_here_in_plaintext():
    table = routing({"a": [("P1", 8080, 100)]}, {"a": [("P2", 0, 100)]})
    table["segments"]["a"]["routes"][0]["cluster"] = "A"
    table["segments"]["a"]["fallbacks"][0]["cluster"] = "B"
    settings = EdgeSettings(
        default_segment="a", cluster="A", addresses={"P2": "p2.b.example.net:8443"}
    )
    plain = servers_of(render(table, settings))["segment_a"]
    assert " ssl" not in plain["P1"] and " ssl" not in plain["P2"]  # without edge.tls

    servers = servers_of(render(table, replace(settings, ca_file="/tls/ca.crt")))["segment_a"]
    assert servers["P1"] == "server P1 127.0.0.1:8080 weight 100"
    assert servers["P2"] == (
        "server P2 p2.b.example.net:8443 weight 100 ssl verify required ca-file /tls/ca.crt "
        "sni str(p2.b.example.net) verifyhost p2.b.example.net "
        "check-ssl check-sni p2.b.example.net backup"
    )


@pytest.mark.parametrize(
    "given, problem",
    [
        ("ca.pem", "not a PEM certificate (-----BEGIN CERTIFICATE-----); give the CA's, \"$(cat"),
        ("server", "CN=p1.b.example.net is not a CA (no basicConstraints CA:TRUE); give the CA"),
        ("ca+key", "holds a private key; give only the CA's certificate"),
    ],
)
def test_an_edge_tls_ca_that_is_not_ca_certificates_is_a_config_error_naming_its_key(
    pki, tmp_path, given, problem
):
    ca, _ = pki
    server = ca.issue(tmp_path / "p1", "p1.b.example.net", ["p1.b.example.net"])
    text = {
        "ca.pem": "ca.pem",  # the file's name instead of "$(cat ca.pem)"
        "server": server.cert.read_text(),
        "ca+key": ca.cert.read_text() + server.key.read_text(),
    }[given]
    raw = raw_of()
    raw["edge"]["tls"] = {"ca": text}
    with pytest.raises(ConfigError) as error:
        parse(raw)
    (found,) = [p for p in error.value.problems if ".tls" in p]
    assert found.startswith(f"hybrid-infra:edge.tls.ca: Value error, {problem}"), found
    assert "BEGIN RSA PRIVATE KEY" not in str(error.value)


def test_with_edge_tls_every_prod_reached_across_clusters_needs_an_address_by_host_name(pki):
    """The Prods' own internal load balancers pass TCP to their plaintext port: with TLS, each
    Prod another cluster may reach needs an address that serves TLS, named as its certificate."""
    ca, _ = pki
    raw = raw_of()
    raw["edge"]["tls"] = {"ca": ca.cert.read_text()}
    with pytest.raises(ConfigError) as error:
        parse(raw)
    assert [p.split(":", 2)[1] for p in error.value.problems] == [
        f"edge.addresses.{prod}" for prod in sorted(raw["prods"])
    ]
    assert error.value.problems[2] == (
        "hybrid-infra:edge.addresses.B-1: edge.tls is set, so proxies on other clusters reach B-1 "
        "over TLS, which its internal load balancer (TCP to the Prod's plaintext port) cannot "
        "serve; give the host:port of a TLS endpoint for B-1 on cluster B, with a certificate "
        "for that host signed by edge.tls.ca"
    )
    raw["edge"]["addresses"] = {p: f"{p.lower()}.prod.example.net:8443" for p in raw["prods"]}
    raw["edge"]["addresses"]["C-1"] = "172.17.30.7:8443"
    with pytest.raises(ConfigError) as error:
        parse(raw)
    assert error.value.problems == [
        "hybrid-infra:edge.addresses.C-1: with edge.tls the host must be a DNS name (the proxy "
        "sends it as SNI and checks the certificate against it), not the IP address 172.17.30.7"
    ]
    raw["edge"]["addresses"]["C-1"] = "c-1.prod.example.net:8443"
    assert parse(raw).edge.tls is not None
    # The release tools read the stack file without its key: the value is still encrypted.
    raw["edge"]["tls"] = {"ca": {"secure": "v1:Zm9v:YmFy"}}
    assert parse(raw).edge.tls is not None


def with_tls(ca: Any) -> Callable[[dict[str, Any]], None]:
    """The prod stack with `edge.tls.ca` and a TLS address per Prod."""

    def mutate(raw: dict[str, Any]) -> None:
        raw["edge"]["tls"] = {"ca": ca}
        raw["edge"]["addresses"] = {p: f"{p.lower()}.prod.example.net:8443" for p in raw["prods"]}

    return mutate


def secret_value(value: Any) -> Any:
    assert rpc.is_rpc_secret(value), "the CA must reach the engine as a secret"
    return value["value"]


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


def test_a_new_ca_is_a_new_secret_and_rolls_the_proxies(pki):
    """HAProxy reads its CA file once, when it starts: only new Pods would see a changed one."""
    ca, other = pki

    def mounted(result: Synthesis) -> str:
        spec = children_by_type(result, EDGE_PROXY, "A-edge-proxy")[DEPLOYMENT].inputs["spec"]
        return str(next(v for v in spec["template"]["spec"]["volumes"] if "secret" in v))

    before = synth_with(with_tls(ca.cert.read_text()))
    rotating = synth_with(with_tls(ca.cert.read_text() + other.cert.read_text()))
    assert mounted(before) != mounted(rotating)


def test_an_encrypted_ca_reaches_the_secret_as_the_placeholder_never_as_its_ciphertext():
    """tools.synth holds no stack key: a `secure:` value stays encrypted there, as every secure
    value does, and its ciphertext is never sent anywhere."""
    ciphertext = "v1:q2VkZ2U=:dGxzLWNhLXBsYWNlaG9sZGVy"
    result = synth_with(with_tls({"secure": ciphertext}))
    secret = children_by_type(result, EDGE_PROXY, "B-edge-proxy")[SECRET].inputs
    assert secret_value(secret["stringData"])["ca.crt"] == SECRET_PLACEHOLDER
    assert all(ciphertext not in str(r.inputs) for r in result.resources)


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
