"""Self-service twins: tagged Octavia LBs become hybrid LBs without a stack-file entry.

The pure planner on its own, then the program under mocks against the real Octavia API (its LBs
really carry the tags; the listing is Octavia's own tag filter)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from keystoneauth1 import session as ks_session

from model.config import Discovery
from model.discovery import twins
from model.octavia import TaggedLoadBalancer
from tests.fixtures.octavia import lb_body, listener_body, post_lb, wait_lb_active
from tests.fixtures.program import synth_with
from tests.synthesis import HYBRID_LB, RECORD
from tools.synth import Synthesis

DISCOVERY = Discovery.model_validate(
    {"defaults": {"zone": "example.net", "checkPort": 443, "weights": {"octavia": 90, "nlb": 10}}}
)


def tagged(name: str, *tags: str, lb_id: str | None = None) -> TaggedLoadBalancer:
    return TaggedLoadBalancer(lb_id or str(uuid.uuid4()), name, ("hybrid-infra/twin", *tags))


def test_tags_over_defaults_and_each_bad_tag_skips_only_its_lb():
    good = tagged("shop", "hybrid-infra/address=203.0.113.7", "hybrid-infra/weights=80-20")
    no_address = tagged("cart")
    bad_weights = tagged("pay", "hybrid-infra/address=203.0.113.8", "hybrid-infra/weights=lots")
    bad_record = tagged("Search", "hybrid-infra/address=203.0.113.9")
    found, skipped = twins([good, no_address, bad_weights, bad_record], DISCOVERY, [])
    assert [d.spec.name for d in found] == ["shop"]
    spec = found[0].spec
    assert (spec.dns.fqdn, spec.dns.weights.octavia, spec.dns.weights.nlb) == (
        "shop.example.net",
        80,
        20,
    )
    assert str(spec.adopt.loadbalancer_id) == good.id  # type: ignore[union-attr]
    assert found[0].tags == {"address": "203.0.113.7", "weights": "80-20"}
    reasons = {s.name: s.reason for s in skipped}
    assert reasons["cart"].startswith("no hybrid-infra/address=<public IP> tag")
    assert reasons["pay"].startswith("hybrid-infra/weights=lots: write it as OCTAVIA-NLB")
    assert reasons["Search"].startswith("name: String should match pattern")


def test_an_lb_also_in_the_stack_file_is_built_from_the_stack_file():
    lb = tagged("shop", "hybrid-infra/address=203.0.113.7")
    found, skipped = twins([lb], DISCOVERY, [lb.id])
    assert found == []
    assert skipped[0].reason == "also listed in loadBalancers; built from there"


# --- against the real Octavia API -------------------------------------------------------------


def create_lb(conn, project_id: str, name: str, tags: list[str]) -> str:
    """A TCP 443 LB with one member, carrying `tags`."""
    https = listener_body("https", "TCP", 443, [("172.17.5.1", 8443)])
    return post_lb(conn, lb_body(name, project_id, https, tags=tags))


def synth_with_discovery(marker: str) -> Synthesis:
    """Prod, discovering LBs tagged `marker` live, without its recorded adopt entry."""

    def discover(raw: dict) -> None:
        raw["loadBalancers"] = raw["loadBalancers"][:2]
        raw["discovery"] = {"tag": marker, "defaults": {"zone": "example.net", "checkPort": 443}}

    return synth_with(discover, octavia_catalog=None)


def records(result: Synthesis, name: str) -> dict[str, Mapping[str, Any]]:
    """The weighted records of `name`'s DNS, by set identifier."""
    return {
        r.inputs["setIdentifier"]: r.inputs
        for r in result.of_type(RECORD)
        if r.name.startswith(f"{name}-dns-")
    }


def test_tagged_lbs_get_twins_and_follow_their_tags(
    octavia_conn, project_id, prod_cloud, monkeypatch
):
    marker = f"hybrid-infra/twin-{uuid.uuid4().hex[:8]}"  # lists see every project here
    checkout = create_lb(
        octavia_conn,
        project_id,
        "checkout",
        [marker, "hybrid-infra/address=203.0.113.20", "hybrid-infra/weights=70-30"],
    )
    create_lb(octavia_conn, project_id, "broken", [marker, "hybrid-infra/weights=70-30"])
    create_lb(octavia_conn, project_id, "untagged", ["something-else"])

    listings = []
    real_request = ks_session.Session.request

    def request(session, url, method, *args, **kwargs):
        if method == "GET" and url.rstrip("/").endswith("/lbaas/loadbalancers"):
            listings.append(kwargs.get("params"))
        return real_request(session, url, method, *args, **kwargs)

    monkeypatch.setattr(ks_session.Session, "request", request)
    result = synth_with_discovery(marker)
    assert len(listings) == 1, "discovery is one list call, whatever the number of LBs"

    built = {r.name for r in result.of_type(HYBRID_LB)}
    assert "checkout" in built and not {"broken", "untagged"} & built
    assert records(result, "checkout")["octavia"]["weightedRoutingPolicies"] == [{"weight": 70}]
    assert records(result, "checkout")["octavia"]["records"] == ["203.0.113.20"]
    assert result.outputs["discovered"] == {
        "checkout": {
            "loadbalancerId": checkout,
            "tags": {"address": "203.0.113.20", "weights": "70-30"},
        }
    }
    skipped = [line for line in result.logs if "broken" in line]
    assert skipped and "no hybrid-infra/address=<public IP> tag" in skipped[0]

    # The team changes a tag: the next run follows it. Then it removes the marker: no twin.
    tags = [marker, "hybrid-infra/address=203.0.113.20", "hybrid-infra/record=pay"]
    octavia_conn.load_balancer.update_load_balancer(checkout, tags=tags)
    wait_lb_active(octavia_conn, checkout)
    assert {r["name"] for r in records(synth_with_discovery(marker), "checkout").values()} == {
        "pay.example.net"
    }
    octavia_conn.load_balancer.update_load_balancer(checkout, tags=tags[1:])
    wait_lb_active(octavia_conn, checkout)
    assert "checkout" not in {r.name for r in synth_with_discovery(marker).of_type(HYBRID_LB)}
