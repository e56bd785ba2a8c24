"""Self-service twins against the real Octavia API: its LBs really carry the tags; the listing is
Octavia's own tag filter."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from keystoneauth1 import session as ks_session

from providers.octavia_nlb_sync import octavia as octavia_shell
from tests.fixtures.octavia import lb_body, listener_body, post_lb, wait_lb_active
from tests.fixtures.program import synth_with
from tests.support.synthesis import HYBRID_LB, RECORD
from tools.synth import Synthesis, snapshot
from tools.synth.diff import diff

# --- against the real Octavia API -------------------------------------------------------------


def create_lb(conn, project_id: str, name: str, tags: list[str]) -> str:
    """A TCP 443 LB with one member, carrying `tags`."""
    https = listener_body("https", "TCP", 443, [("172.17.5.1", 8443)])
    return post_lb(conn, lb_body(name, project_id, https, tags=tags))


def synth_with_discovery(marker: str, last_up: Mapping[str, Any] | None = None) -> Synthesis:
    """Prod, discovering LBs tagged `marker` live, without its recorded adopt entry; `last_up`:
    the outputs of the run before, as the engine hands them to the program."""

    def discover(raw: dict) -> None:
        raw["loadBalancers"] = raw["loadBalancers"][:2]
        raw["discovery"] = {"tag": marker, "defaults": {"zone": "example.net", "checkPort": 443}}

    return synth_with(discover, octavia_catalog=None, last_up=last_up)


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

    # A typo in a tag: the next run keeps the twin as it was, and says which tag.
    typo = [marker, "hybrid-infra/address=203.0.113.20", "hybrid-infra/weights=70/30"]
    octavia_conn.load_balancer.update_load_balancer(checkout, tags=typo)
    wait_lb_active(octavia_conn, checkout)
    kept = synth_with_discovery(marker, last_up=result.outputs)
    assert records(kept, "checkout")["octavia"]["weightedRoutingPolicies"] == [{"weight": 70}]
    assert kept.outputs["discovered"]["checkout"]["tags"]["weights"] == "70-30"
    assert any("hybrid-infra/weights=70/30: write it as OCTAVIA-NLB" in line for line in kept.logs)

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


def test_while_octavia_cannot_list_them_the_twins_stay_as_the_last_up_built_them(
    octavia_conn, project_id, prod_cloud, octavia_server, monkeypatch
):
    """Octavia down: no listing, no describing. The twins of the last up are declared exactly as
    then (a DNS drain elsewhere still applies); none is added or removed, and after the failed
    listing no LB is asked for (each would wait out its own timeout). Under mocks: the
    declared shape."""
    marker = f"hybrid-infra/twin-{uuid.uuid4().hex[:8]}"
    for name in ("ledger", "lending"):
        create_lb(octavia_conn, project_id, name, [marker, "hybrid-infra/address=203.0.113.30"])
    deployed = synth_with_discovery(marker)
    assert set(deployed.outputs["discovered"]) == {"ledger", "lending"}
    described = []
    real = octavia_shell.read_loadbalancer
    monkeypatch.setattr(
        octavia_shell, "read_loadbalancer", lambda *a: described.append(a[1]) or real(*a)
    )
    octavia_server.stop()
    try:
        kept = synth_with_discovery(marker, last_up=deployed.outputs)
    finally:
        octavia_server.start()
    assert described == []
    change = diff(snapshot.snapshot(deployed), snapshot.snapshot(kept))
    assert change.added == change.removed == change.changed == ()
    assert any(
        f"cannot list the LBs tagged {marker}" in line
        and "the 2 twin(s) of the last up are kept as they were" in line
        for line in kept.logs
    )
