"""Adopt mode against the real Octavia API (tests/fixtures/octavia.py): a real LB mirrored, an
unknown one a config error, and an Octavia outage keeping the twin as the last up read it."""

import pytest

from model.config import ConfigError
from tests.fixtures.octavia import lb_body, listener_body, post_lb
from tests.fixtures.program import synth_with
from tests.support.octavia_catalog import below_hlb
from tests.support.synthesis import (
    LISTENER,
    SECGROUP_RULE,
    SYNC,
    TARGET_GROUP,
)
from tools.synth import ProgramFailed, snapshot, synthesize
from tools.synth.diff import diff

# --- adopt mode against the real Octavia API -------------------------------------------------


@pytest.fixture
def web_and_dns_lb(octavia_conn, project_id) -> str:
    """An LB made outside the stack: HTTP 80 (monitored on /ready) and UDP 53, one member each."""
    monitor = {
        "type": "HTTP",
        "delay": 15,
        "timeout": 4,
        "max_retries": 4,
        "max_retries_down": 2,
        "url_path": "/ready",
        "expected_codes": "200-204",
    }
    web = listener_body("web", "HTTP", 80, [("172.17.3.1", 8080)], monitor=monitor)
    dns = listener_body("dns", "UDP", 53, [("172.17.3.1", 5353)], lb_algorithm="SOURCE_IP")
    return post_lb(octavia_conn, lb_body("adopted", project_id, web, dns))


def test_adopt_mode_mirrors_a_real_octavia_lb(octavia_conn, web_and_dns_lb, prod_cloud):
    lb_id = web_and_dns_lb
    pools = {p.name: p.id for p in octavia_conn.load_balancer.pools(loadbalancer_id=lb_id)}

    def adopt(raw: dict) -> None:
        raw["loadBalancers"][2]["adopt"]["loadbalancerId"] = lb_id

    below = below_hlb(synth_with(adopt, octavia_catalog=None), "game-gw")
    groups = {
        (g.inputs["protocol"], g.inputs["port"]): g.inputs for g in below.of_type(TARGET_GROUP)
    }
    assert set(groups) == {("TCP", 80), ("UDP", 53)}
    check = groups[("TCP", 80)]["healthCheck"]
    assert (check["protocol"], check["interval"], check["timeout"]) == ("HTTP", 15, 4)
    assert (check["healthyThreshold"], check["unhealthyThreshold"]) == (4, 2)
    assert (check["path"], check["matcher"]) == ("/ready", "200-204")
    listeners = sorted((li.inputs["protocol"], li.inputs["port"]) for li in below.of_type(LISTENER))
    assert listeners == [("TCP", 80), ("UDP", 53)]
    (sync,) = below.of_type(SYNC)
    assert sync.inputs["loadbalancer_id"] == lb_id
    assert sorted(b["pool_id"] for b in sync.inputs["bindings"]) == sorted(pools.values())
    rules = below.of_type(SECGROUP_RULE)
    assert {(r.inputs["protocol"], r.inputs["portRangeMin"]) for r in rules} == {
        ("tcp", 8080),
        ("udp", 5353),
    }


def test_adopting_an_unknown_lb_is_a_config_error_naming_the_key(prod_cloud):
    """The real Octavia answers 404 for prod's recorded id: a mistake in the stack file."""
    with pytest.raises(ProgramFailed) as failed:
        synthesize("prod", octavia_catalog=None)
    assert isinstance(failed.value.cause, ConfigError)
    assert failed.value.cause.problems == [
        "hybrid-infra:loadBalancers[2].adopt.loadbalancerId: no Octavia load balancer "
        "6d4f8e2a-1c3b-4e5d-9f7a-8b0c1d2e3f40 (404)"
    ]
    assert str(failed.value.cause).startswith(
        "1 problem(s) in the stack configuration; nothing was changed. Fix them in Pulumi.prod.yaml"
    )


def as_engine_returns(value):
    """Outputs as the engine hands them back: every number a double (protobuf Struct)."""
    if isinstance(value, dict):
        return {k: as_engine_returns(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_engine_returns(v) for v in value]
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


def test_while_octavia_is_down_an_adopted_twin_stays_as_the_last_up_read_it(
    octavia_conn, web_and_dns_lb, prod_cloud, octavia_server
):
    """An outage, not a config error: with the last up's outputs the program declares exactly
    what it declared then (so a DNS drain still applies), with a warning; without them (a first
    run) it stops, saying Octavia did not answer. Under mocks: the declared shape."""

    def adopt(raw: dict) -> None:
        raw["loadBalancers"][2]["adopt"]["loadbalancerId"] = web_and_dns_lb

    deployed = synth_with(adopt, octavia_catalog=None)
    assert deployed.outputs["octavia"][web_and_dns_lb]["name"] == "adopted"
    octavia_server.stop()
    try:
        kept = synth_with(adopt, octavia_catalog=None, last_up=as_engine_returns(deployed.outputs))
        with pytest.raises(ProgramFailed) as failed:
            synth_with(adopt, octavia_catalog=None)
    finally:
        octavia_server.start()
    change = diff(snapshot.snapshot(deployed), snapshot.snapshot(kept))
    assert change.added == change.removed == change.changed == ()
    assert any(
        line.startswith(
            "warning: hybrid-infra:loadBalancers[2].adopt.loadbalancerId: Octavia did not answer"
        )
        and "the twin mirrors the LB as the last up read it" in line
        for line in kept.logs
    )
    assert not isinstance(failed.value.cause, ConfigError)
    assert str(failed.value.cause).startswith(
        "hybrid-infra:loadBalancers[2].adopt.loadbalancerId: Octavia did not answer, and no "
        "earlier up read this LB"
    )
