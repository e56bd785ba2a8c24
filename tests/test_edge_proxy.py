"""The edge proxy's configuration: a pure function of the routing table (properties), checked by
the real `haproxy -c`, and run by the real HAProxy (Debian package) in front of small local
Prods, each its own process (`devenv/haproxy.py`): segments reach their Prods, unknown segments
the default, a routing change reloads with no failed request, a Prod that just took the new
version ramps up, a killed Prod's segment goes to its fallback with no failed request, checks
ask the health path with the Host the Prod expects, and only trusted sources choose a segment.
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
from hypothesis import given, settings
from hypothesis import strategies as st

from devenv.haproxy import (
    HAPROXY,
    SEEN_COOKIE,
    SEEN_SEGMENT,
    Edge,
    Prods,
    ask,
    loopback_routing,
)
from devenv.processes import free_port
from model.config import ConfigError, Prod, Segment
from model.edge_config import (
    LIVENESS_PATH,
    EdgeConfigError,
    EdgeSettings,
    liveness_frontend,
    render,
)
from model.placement import fallbacks, place
from model.stack import parse
from tests.fixtures.program import raw_of, synth_with
from tests.synthesis import CONFIGMAP, DEPLOYMENT, EDGE_PROXY, PDB, children_by_type
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
    st.builds(Prod, cluster=st.sampled_from(["A", "B", "C"]), capacity=st.integers(100, 5000)),
    min_size=2,
    max_size=6,
)


def table_of(prods: dict[str, Prod], segments: tuple[Segment, ...], drained: set[str]) -> Any:
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
            except OSError as error:
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
