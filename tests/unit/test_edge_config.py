"""The edge proxy's configuration as a pure function of the routing table (properties), and the
edge settings' config errors, each naming its key."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devenv.haproxy import (
    loopback_routing,
)
from model.config import ConfigError, ProdSpec, Segment
from model.edge_config import (
    EdgeConfigError,
    EdgeSettings,
    render,
)
from model.placement import fallbacks, place
from model.stack import parse
from tests.fixtures.program import raw_of
from tests.support.edge import prods, routing, servers_of

# --- the pure function --------------------------------------------------------------------


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


# --- the program's edge proxies (mocks: the program's shape), their configs by real haproxy -c


def test_a_health_path_that_would_break_the_proxy_configuration_is_a_config_error():
    raw = raw_of()
    raw["app"]["healthPath"] = "/ready now#1"
    with pytest.raises(ConfigError) as error:
        parse(raw)
    (problem,) = error.value.problems
    assert problem.startswith("hybrid-infra:app.healthPath: String should match pattern")


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


# --- TLS to Prods on other clusters (edge.tls) -----------------------------------------------


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
