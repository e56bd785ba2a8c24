"""Self-service twins, the pure planner: tagged Octavia LBs become hybrid LBs without a
stack-file entry, and the fence on public twins, zones and management ports."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from model.discovery import KEYS, LastUp, last_up, twins
from model.octavia import TaggedLoadBalancer
from tests.support.discovery import DISCOVERY, REPORTS, last_run, tagged


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


GOOD_TAGS = ("hybrid-infra/address=192.0.2.50", "hybrid-infra/weights=95-5")


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
