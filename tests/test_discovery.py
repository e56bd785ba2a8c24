"""Self-service twins: tagged Octavia LBs become hybrid LBs without a stack-file entry.

The pure planner on its own, then the program under mocks against the real Octavia API (its LBs
really carry the tags; the listing is Octavia's own tag filter)."""

from __future__ import annotations

import functools
import io
import json
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st
from keystoneauth1 import session as ks_session

from model.config import Discovery
from model.discovery import KEYS, LastUp, last_up, twins
from model.octavia import TaggedLoadBalancer
from providers.octavia_nlb_sync import octavia as octavia_shell
from tests.fixtures.octavia import lb_body, listener_body, post_lb, wait_lb_active
from tests.fixtures.program import synth_with
from tests.support.synthesis import HYBRID_LB, NLB, RECORD, SECURITY_GROUP, descendants, one
from tests.test_hybrid_lb import catalog_with_listener
from tools.synth import ProgramFailed, Synthesis, cli, snapshot, synthesize
from tools.synth.diff import diff
from tools.synth.synthesis import OCTAVIA_CATALOG, READ_STACK_OUTPUTS

DISCOVERY = Discovery.model_validate(
    {"defaults": {"zone": "example.net", "checkPort": 443, "weights": {"octavia": 90, "nlb": 10}}}
)


def tagged(name: str, *tags: str, lb_id: str | None = None) -> TaggedLoadBalancer:
    return TaggedLoadBalancer(lb_id or str(uuid.uuid4()), name, ("hybrid-infra/twin", *tags))


def test_tags_over_defaults_and_a_bad_tag_never_skips_the_lb_for_a_default():
    good = tagged("shop", "hybrid-infra/address=203.0.113.7", "hybrid-infra/weights=80-20")
    no_address = tagged("cart")
    bad_weights = tagged("pay", "hybrid-infra/address=203.0.113.8", "hybrid-infra/weights=lots")
    bad_record = tagged("Search", "hybrid-infra/address=203.0.113.9")
    found, skipped = twins([good, no_address, bad_weights, bad_record], DISCOVERY, [])
    by_name = {d.spec.name: d for d in found}
    assert sorted(by_name) == ["pay", "shop"]
    spec = by_name["shop"].spec
    assert (spec.dns.fqdn, spec.dns.weights.octavia, spec.dns.weights.nlb) == (
        "shop.example.net",
        80,
        20,
    )
    assert str(spec.adopt.loadbalancer_id) == good.id  # type: ignore[union-attr]
    assert by_name["shop"].tags == {"address": "203.0.113.7", "weights": "80-20"}
    # A bad optional tag on a new LB: the stack default, with a warning naming the tag.
    pay = by_name["pay"]
    assert (pay.spec.dns.weights.octavia, pay.spec.dns.weights.nlb) == (90, 10)
    assert pay.tags == {"address": "203.0.113.8"}
    assert pay.warnings() == [
        f"tagged Octavia LB pay ({bad_weights.id}): hybrid-infra/weights=lots: write it as "
        "OCTAVIA-NLB, e.g. 90-10; using the stack default"
    ]
    # Skipped only for what has no default: the address, or an LB name that cannot be one.
    reasons = {s.name: s.reason for s in skipped}
    assert reasons["cart"].startswith("no hybrid-infra/address=<public IP> tag")
    assert reasons["Search"].startswith("name: String should match pattern")


def test_an_lb_also_in_the_stack_file_is_built_from_the_stack_file():
    lb = tagged("shop", "hybrid-infra/address=203.0.113.7")
    found, skipped = twins([lb], DISCOVERY, [lb.id])
    assert found == []
    assert skipped[0].reason == "also listed in loadBalancers; built from there"


# --- a twin the last up built ---------------------------------------------------------------

REPORTS = "8a1e5c3b-2d4f-4b6a-9c8d-7e6f5a4b3c21"
GOOD_TAGS = ("hybrid-infra/address=192.0.2.50", "hybrid-infra/weights=95-5")


def last_run(*lbs: TaggedLoadBalancer, protected: bool = False) -> dict[str, LastUp]:
    """What an `up` over `lbs` leaves, read back as the next run reads it."""
    found, _ = twins(lbs, DISCOVERY, [], protected=protected)
    return last_up(
        {d.spec.name: {"loadbalancerId": d.loadbalancer_id, "tags": d.tags} for d in found}
    )


def test_a_bad_tag_keeps_what_the_last_up_used_and_warns_naming_it():
    before = last_run(tagged("reports", *GOOD_TAGS, lb_id=REPORTS))
    typo = tagged(
        "reports", "hybrid-infra/address=192.0.2.50", "hybrid-infra/weights=95/5", lb_id=REPORTS
    )
    (twin,), skipped = twins([typo], DISCOVERY, [], previous=before)
    assert skipped == []
    assert (twin.spec.dns.weights.octavia, twin.spec.dns.weights.nlb) == (95, 5)
    assert twin.tags == {"address": "192.0.2.50", "weights": "95-5"}  # the next run's memory
    assert twin.warnings() == [
        f"tagged Octavia LB reports ({REPORTS}): hybrid-infra/weights=95/5: write it as "
        "OCTAVIA-NLB, e.g. 90-10; kept 95-5, as the last up had it"
    ]


def test_a_twin_the_last_up_built_survives_a_lost_address_and_a_rename():
    before = last_run(tagged("reports", *GOOD_TAGS, lb_id=REPORTS))
    renamed = TaggedLoadBalancer(REPORTS, "Reports 2", ("hybrid-infra/twin", "hybrid-infra/zone=x"))
    (twin,), skipped = twins([renamed], DISCOVERY, [], previous=before)
    assert skipped == []
    assert (twin.spec.name, twin.spec.dns.fqdn) == ("reports", "reports.example.net")
    assert str(twin.spec.dns.octavia_address) == "192.0.2.50"
    assert [w.split(": ", 1)[1] for w in twin.warnings()] == [
        "no hybrid-infra/address=<public IP> tag: Route53 needs the VIP's floating address; "
        "kept 192.0.2.50, as the last up had it",
        "hybrid-infra/zone=x: String should match pattern "
        "'^([a-z0-9]([a-z0-9-]*[a-z0-9])?\\.)+[a-z]{2,}$'; using the stack default",
        "the twin keeps its name reports, the identity of its resources; to rename it, remove "
        "the marker tag, run up, and tag it again",
    ]


@given(
    st.dictionaries(
        st.sampled_from(KEYS),
        st.text(alphabet="abc-/9.0 Z", max_size=12),
    )
)
def test_whatever_its_tags_say_a_twin_the_last_up_built_is_never_skipped(values):
    """Any tag values at all (valid, empty, junk): the twin stays, and every value it uses is
    either its tag's, the last up's or the default."""
    before = last_run(tagged("reports", *GOOD_TAGS, lb_id=REPORTS))
    lb = tagged("reports", *(f"hybrid-infra/{k}={v}" for k, v in values.items()), lb_id=REPORTS)
    (twin,), skipped = twins([lb], DISCOVERY, [], previous=before)
    assert skipped == []
    for key, used in twin.tags.items():
        assert used in (values.get(key), before[REPORTS].tags.get(key))


def test_a_newcomer_never_takes_the_dns_name_of_an_existing_twin():
    before = last_run(tagged("reports", *GOOD_TAGS, lb_id=REPORTS))
    newcomer = tagged("aaa", "hybrid-infra/address=192.0.2.9", "hybrid-infra/record=reports")
    existing = tagged("reports", *GOOD_TAGS, lb_id=REPORTS)
    found, skipped = twins([newcomer, existing], DISCOVERY, [], previous=before)
    assert skipped == []
    assert {d.spec.name: d.spec.dns.fqdn for d in found} == {
        "reports": "reports.example.net",
        "aaa": "aaa.example.net",
    }
    (warning,) = next(d for d in found if d.spec.name == "aaa").warnings()
    assert warning.endswith(
        "its DNS name reports.example.net is taken by another LB; using the stack default"
    )


def test_in_a_protected_stack_a_dns_move_waits_until_allow_moves_lists_the_lb():
    """Route53 cannot rename a record, so a record or zone change replaces both records, which
    prod protects: the move would fail every prod preview. It waits instead, with a warning."""
    before = last_run(tagged("reports", *GOOD_TAGS, lb_id=REPORTS), protected=True)
    moved = tagged("reports", *GOOD_TAGS, "hybrid-infra/record=sales", lb_id=REPORTS)
    (held,), _ = twins([moved], DISCOVERY, [], previous=before, protected=True)
    assert (held.spec.dns.fqdn, held.moves_dns) == ("reports.example.net", False)
    assert held.warnings()[0].endswith(
        "hybrid-infra/record=sales would move the DNS name reports.example.net, whose records "
        "this stack protects; it moves once hybrid-infra:discovery.allowMoves lists this LB; "
        "kept the stack default, as the last up had it"
    )
    allowing = DISCOVERY.model_copy(update={"allow_moves": (uuid.UUID(REPORTS),)})
    (moving,), _ = twins([moved], allowing, [], previous=before, protected=True)
    assert (moving.spec.dns.fqdn, moving.moves_dns) == ("sales.example.net", True)
    (unprotected,), _ = twins([moved], DISCOVERY, [], previous=before)
    assert unprotected.spec.dns.fqdn == "sales.example.net"


def test_the_last_up_is_read_from_the_discovered_output_and_nothing_else():
    assert last_up(None) == {} and last_up("[secret]") == {}
    assert last_up(
        {
            "reports": {"loadbalancerId": REPORTS, "tags": {"weights": "95-5", "other": "x"}},
            "broken": {"tags": {}},
            "odd": "text",
        }
    ) == {REPORTS: LastUp("reports", {"weights": "95-5"})}


# --- the fence: public twins, zones and management ports -----------------------------------

PUBLIC = "hybrid-infra/scheme=internet-facing"
ADDRESS = "hybrid-infra/address=192.0.2.60"


def allowing(**keys: Any) -> Discovery:
    return DISCOVERY.model_copy(update=keys)


def test_a_twin_is_internal_and_a_public_one_needs_both_the_tag_and_the_stack_file():
    asks = tagged("ads", ADDRESS, PUBLIC)
    allowed = allowing(allow_public=(uuid.UUID(asks.id),))
    (twin,), _ = twins([asks], allowed, [])
    assert twin.spec.nlb.scheme == "internet-facing"
    assert twin.tags["scheme"] == "internet-facing"
    # Listed but not asked for: internal. Asked for but not listed: no twin at all, since an
    # internal one would serve a share of a record meant for the internet from private IPs.
    quiet = tagged("news", ADDRESS, lb_id=asks.id)
    assert twins([quiet], allowed, [])[0][0].spec.nlb.scheme == "internal"
    found, (skipped,) = twins([asks], DISCOVERY, [])
    assert found == []
    assert skipped.message() == (
        f"tagged Octavia LB ads ({asks.id}): hybrid-infra/scheme=internet-facing: this stack "
        "makes a twin internet-facing only for the LBs in hybrid-infra:discovery.allowPublic; "
        f"ask the platform team to list {asks.id} there"
    )
    typo = tagged("ads", ADDRESS, "hybrid-infra/scheme=public")
    assert twins([typo], allowed, [])[0] == []


def test_an_existing_twin_asking_for_the_internet_stays_and_a_revoked_one_turns_internal():
    lb_id = str(uuid.uuid4())
    allowed = allowing(allow_public=(uuid.UUID(lb_id),))
    before = last_run(tagged("ads", ADDRESS, lb_id=lb_id))
    (kept,), skipped = twins(
        [tagged("ads", ADDRESS, PUBLIC, lb_id=lb_id)], DISCOVERY, [], previous=before
    )
    assert skipped == [] and kept.spec.nlb.scheme == "internal"
    assert kept.warnings()[0].endswith(
        "ask the platform team to list " + lb_id + " there; using the stack default"
    )
    # Public while allowed; the allowance taken back wins over the last up and the tag.
    public = last_up(
        {
            "ads": {
                "loadbalancerId": lb_id,
                "tags": {"address": "192.0.2.60", "scheme": "internet-facing"},
            }
        }
    )
    asks = tagged("ads", ADDRESS, PUBLIC, lb_id=lb_id)
    assert twins([asks], allowed, [], previous=public)[0][0].spec.nlb.scheme == "internet-facing"
    (revoked,), _ = twins([asks], DISCOVERY, [], previous=public)
    assert revoked.spec.nlb.scheme == "internal"


def test_a_zone_tag_names_a_zone_the_stack_allows_or_the_default_is_used():
    lb = tagged("ads", ADDRESS, "hybrid-infra/zone=evil.example.com")
    (twin,), _ = twins([lb], DISCOVERY, [])
    assert twin.spec.dns.fqdn == "ads.example.net"
    assert twin.warnings() == [
        f"tagged Octavia LB ads ({lb.id}): hybrid-infra/zone=evil.example.com: not a zone this "
        "stack allows (example.net); ask the platform team to add it to "
        "hybrid-infra:discovery.allowZones; using the stack default"
    ]
    (moved,), _ = twins([lb], allowing(allow_zones=("evil.example.com",)), [])
    assert (moved.spec.dns.fqdn, moved.warnings()) == ("ads.evil.example.com", [])


def test_a_discovered_kubernetes_api_listener_never_reaches_the_twin_and_nothing_faces_the_world(
    tmp_path,
):
    """The reports team adds a 6443 listener (before: `0.0.0.0/0:6443` on an internet-facing
    twin). Now the twin is internal and carries 443 only; a warning names the LB and the port.
    Mocks: the program's shape."""
    catalog = catalog_with_listener(tmp_path, "reports", 6443, tags=TYPO[:2])
    result = synth_with(with_discovery, octavia_catalog=catalog)
    twin = descendants(result, one(result.of_type(HYBRID_LB), "reports"))
    (nlb,) = twin.of_type(NLB)
    assert nlb.inputs["internal"] is True
    (group,) = [g for g in twin.of_type(SECURITY_GROUP) if g.name == "reports-nlb"]
    assert [(r["fromPort"], r["cidrBlocks"]) for r in group.inputs["ingress"]] == [
        (443, ["10.10.0.0/16", "172.16.0.0/14"])
    ]
    assert [r["fromPort"] for r in group.inputs["egress"]] == [8443]
    assert any(
        f"hybrid-infra:discovery[{REPORTS}]: listener port-6443 on 6443 (Kubernetes API): a "
        "twin never carries a management port; not mirrored" in line
        for line in result.logs
    ), result.logs


def test_a_public_twin_opens_service_ports_to_the_world_and_never_a_management_port(tmp_path):
    """Allowed and asked for: internet-facing. Its 443 is open to the world; a listener on
    443 in front of members on 6443 (the cluster API under another number) is not mirrored."""
    catalog = catalog_with_listener(
        tmp_path, "reports", 8443, member_port=6443, tags=[*TYPO[:2], PUBLIC]
    )

    def public(raw: dict) -> None:
        with_discovery(raw)
        raw["discovery"]["allowPublic"] = [REPORTS]

    result = synth_with(public, octavia_catalog=catalog)
    twin = descendants(result, one(result.of_type(HYBRID_LB), "reports"))
    assert one(twin.of_type(NLB), "reports-nlb").inputs["internal"] is False
    (group,) = [g for g in twin.of_type(SECURITY_GROUP) if g.name == "reports-nlb"]
    assert [(r["fromPort"], r["cidrBlocks"]) for r in group.inputs["ingress"]] == [
        (443, ["0.0.0.0/0"])
    ]
    assert 6443 not in [r["fromPort"] for r in group.inputs["egress"]]
    assert any(
        "listener port-8443 in front of members on 6443 (Kubernetes API)" in line
        for line in result.logs
    )


# --- the whole program, with the recorded catalog ---------------------------------------------


def catalog_with(tmp_path: Path, name: str, tags: list[str]) -> Path:
    """The recorded catalog (devenv/octavia-catalog.json) with `name`'s tags replaced."""
    entries = json.loads(OCTAVIA_CATALOG.read_text())
    (entry,) = [e for e in entries.values() if e["name"] == name]
    entry["tags"] = tags
    path = tmp_path / "octavia-catalog.json"
    path.write_text(json.dumps(entries))
    return path


TYPO = ["hybrid-infra/twin", "hybrid-infra/address=192.0.2.50", "hybrid-infra/weights=95/5"]


def test_the_tag_typo_synth_diff_removes_nothing(tmp_path, monkeypatch):
    """The reports team writes `weights=95/5` for `95-5`, and a reviewer runs
    `tools.synth --stack dev --diff dev.json` (the old snapshot stands for the stack as
    deployed, so its outputs are the last up's): nothing is removed or changed, and the
    output names the ignored tag. Under mocks: the shape the engine would apply, not an `up`."""
    deployed = tmp_path / "dev.json"
    assert cli.main(["--stack", "dev", "--json", str(deployed)]) == 0
    typo = catalog_with(tmp_path, "reports", TYPO)
    monkeypatch.setattr(cli, "synthesize", functools.partial(synthesize, octavia_catalog=typo))
    shown = io.StringIO()
    assert cli.main(["--stack", "dev", "--diff", str(deployed)], out=shown) == 0
    lines = shown.getvalue().splitlines()
    assert lines[-1] == "0 to add, 0 to change, 0 to remove, 1 output change(s)"
    assert lines[-2].startswith("    discovered.reports.ignoredTags: (absent) → ")

    # Without the last up (a first run, or lost state) the twin still stays: the bad value
    # falls back to the stack default, so only the two weights change.
    first = snapshot.snapshot(synthesize("dev", octavia_catalog=typo))
    change = diff(snapshot.loads(deployed.read_text()), first)
    assert change.added == change.removed == ()
    assert {(c.name, p.path, p.new) for c in change.changed for p in c.changes} == {
        ("reports-dns-octavia", "inputs.weightedRoutingPolicies[0].weight", 90),
        ("reports-dns-nlb", "inputs.weightedRoutingPolicies[0].weight", 10),
    }


def with_discovery(raw: dict) -> None:
    """Prod, also discovering the recorded LBs tagged `hybrid-infra/twin` (reports)."""
    raw["discovery"] = {"defaults": {"zone": "example.net", "checkPort": 443}}


def test_only_removing_the_marker_removes_a_twin_and_prod_protects_its_nlb_and_records(
    tmp_path,
):
    """Under mocks this shows the flags, not the refusal: with protect in state, the engine
    refuses to delete the NLB and the two records the next run no longer declares."""
    deployed = synth_with(with_discovery)
    twin = descendants(deployed, one(deployed.of_type(HYBRID_LB), "reports"))
    protected = {(r.type, r.name) for r in twin.resources if r.protect}
    assert protected == {
        (NLB, "reports-nlb"),
        (RECORD, "reports-dns-octavia"),
        (RECORD, "reports-dns-nlb"),
    }
    # Address tag gone, record tag broken: the twin stays exactly as it was.
    bad = ["hybrid-infra/twin", "hybrid-infra/weights=95-5", "hybrid-infra/record=Re/ports"]
    kept = synth_with(
        with_discovery,
        octavia_catalog=catalog_with(tmp_path, "reports", bad),
        last_up=deployed.outputs,
    )
    change = diff(snapshot.snapshot(deployed), snapshot.snapshot(kept))
    assert change.added == change.removed == change.changed == ()
    untagged = catalog_with(tmp_path, "reports", TYPO[1:])
    gone = synth_with(with_discovery, octavia_catalog=untagged, last_up=deployed.outputs)
    assert "reports" not in {r.name for r in gone.of_type(HYBRID_LB)}


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


def test_the_program_reads_its_own_last_outputs_and_stops_when_it_cannot():
    """The invoke is asked for this very stack; a backend that cannot answer stops the run,
    since without the last up a bad tag could remove a twin. Under mocks: the request the
    engine would get, not the engine's answer."""
    asked = []

    def answer(args):
        asked.append(args["name"])
        return {"outputs": {"discovered": {}}}

    synth_with(with_discovery, invokes={READ_STACK_OUTPUTS: answer})
    assert asked == ["prod"]  # mocks have no organization; a real engine gets org/project/prod

    class BackendDown(grpc.RpcError):
        """What the engine answers when its backend cannot be read (a gRPC error)."""

        def code(self):
            return grpc.StatusCode.UNKNOWN

        def details(self):
            return "backend unreachable"

    def unreachable(args):
        raise BackendDown()

    with pytest.raises(ProgramFailed) as failed:
        synth_with(with_discovery, invokes={READ_STACK_OUTPUTS: unreachable})
    assert str(failed.value.cause).startswith(
        "cannot read this stack's outputs from its last up (prod: "
    )
    assert "nothing was changed" in str(failed.value.cause)
