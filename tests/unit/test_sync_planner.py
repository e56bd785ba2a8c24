"""Properties of the pure sync planner (hypothesis): convergence, scope, chunking, the guard;
and the sync's planning step over what a read found (`sync.plan_groups`), which is pure too."""

from ipaddress import IPv4Network

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from providers.octavia_nlb_sync.planner import (
    MAX_TARGETS_PER_CALL,
    Member,
    SyncRefused,
    Target,
    chunks,
    desired_in_every_pool,
    desired_targets,
    members_after_up,
    needs_zone_all,
    plan_group,
    plan_release,
    registered,
    target_group_label,
)
from providers.octavia_nlb_sync.spec import SyncSpec
from providers.octavia_nlb_sync.sync import Observed, plan_groups

ARN = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/shop-443/0123456789abcdef"
keys = st.builds(
    lambda a, b, port: f"172.17.{a}.{b}:{port}",
    st.integers(0, 3),
    st.integers(1, 20),
    st.sampled_from([80, 443, 8443]),
)
sets = st.frozensets(keys, max_size=40)


def apply(actual: frozenset[str], plan) -> frozenset[str]:
    return (actual - set(plan.deregister)) | set(plan.register)


@given(desired=sets, actual=sets, owned=sets, owns=st.booleans())
def test_applying_the_plan_converges_on_the_owned_set(desired, actual, owned, owns):
    plan = plan_group(ARN, desired, actual, owned, owns_target_group=owns, guarded=False)
    after = apply(actual, plan)
    scope = actual if owns else owned
    assert desired <= after
    assert not (after & scope) - desired
    assert set(plan.owned_after) == desired


@given(desired=sets, actual=sets, owned=sets)
def test_targets_not_owned_are_never_deregistered(desired, actual, owned):
    plan = plan_group(ARN, desired, actual, owned, guarded=False)
    assert set(plan.deregister) <= owned
    assert not set(plan.register) & actual


@given(desired=sets, actual=sets, owned=sets, fraction=st.floats(0, 1))
def test_the_guard_refuses_collapse_and_allows_the_rest(desired, actual, owned, fraction):
    scope = owned & actual
    try:
        plan = plan_group(ARN, desired, actual, owned, max_deregister_fraction=fraction)
    except SyncRefused:
        lost = len(scope - desired) - len(desired - actual)
        assert not desired or lost > fraction * len(scope)
        return
    if plan.deregister:
        assert desired
        assert len(plan.deregister) - len(plan.register) <= fraction * len(scope)


@given(owned=st.frozensets(keys, min_size=1, max_size=40))
def test_an_empty_octavia_read_never_empties_the_group(owned):
    with pytest.raises(SyncRefused, match="Octavia lists no serving member"):
        plan_group(ARN, frozenset(), owned, owned, max_deregister_fraction=1.0)


def test_a_collapsed_read_names_the_guard_figures():
    owned = frozenset(f"172.17.0.{i}:443" for i in range(1, 11))
    with pytest.raises(SyncRefused) as refused:
        plan_group(ARN, frozenset({"172.17.0.1:443"}), owned, owned)
    assert "tg/shop-443: the sync would deregister 9 of 10 targets" in str(refused.value)
    assert "maxDeregisterFraction" in str(refused.value)


def test_replacing_every_member_one_for_one_is_not_a_collapse():
    old = frozenset({"172.17.0.1:443", "172.17.0.2:443"})
    new = frozenset({"172.17.0.3:443", "172.17.0.4:443"})
    plan = plan_group(ARN, new, old, old)
    assert plan.deregister == tuple(sorted(old))
    assert plan.register == tuple(sorted(new))


@given(st.lists(keys, max_size=900, unique=True))
def test_chunks_hold_at_most_200_targets_and_lose_none(targets):
    parts = list(chunks(targets))
    assert all(0 < len(p) <= MAX_TARGETS_PER_CALL for p in parts)
    assert [t for p in parts for t in p] == targets


@given(desired=sets, actual=sets, owned=sets)
def test_a_second_plan_after_applying_is_a_noop(desired, actual, owned):
    first = plan_group(ARN, desired, actual, owned, guarded=False)
    second = plan_group(ARN, desired, apply(actual, first), frozenset(first.owned_after))
    assert second.is_noop


def test_weight_zero_and_admin_down_members_are_not_desired():
    members = [
        Member("172.17.0.1", 443),
        Member("172.17.0.2", 443, weight=0),
        Member("172.17.0.3", 443, admin_state_up=False),
        Member("172.17.0.1", 8443, weight=5),
    ]
    assert desired_targets(members) == {"172.17.0.1:443", "172.17.0.1:8443"}


@given(actual=sets, owned=sets)
def test_release_gives_back_owned_targets_only(actual, owned):
    plan = plan_release(ARN, actual, owned)
    assume(actual)
    assert set(plan.deregister) == actual & owned
    assert plan.register == ()


def test_on_prem_ips_need_zone_all_and_vpc_ips_do_not():
    vpc = (IPv4Network("10.10.0.0/16"),)
    assert needs_zone_all("172.17.0.1", vpc)
    assert not needs_zone_all("10.10.3.4", vpc)


def test_target_group_label_is_short():
    assert target_group_label(ARN) == "tg/shop-443"


members = st.lists(
    st.builds(
        Member,
        address=st.sampled_from([f"172.17.0.{i}" for i in range(1, 9)]),
        protocol_port=st.sampled_from([443, 8443]),
        weight=st.integers(0, 3),
        admin_state_up=st.booleans(),
    ),
    max_size=12,
    unique_by=lambda m: m.target,
)


@given(live=members, declared=members, withdrawn=st.frozensets(keys.map(str), max_size=5))
def test_members_after_up_are_the_declared_ones_plus_undeclared_live_ones(
    live, declared, withdrawn
):
    """Declared members win as declared; withdrawn ones are gone even while Octavia lists them;
    a member nobody declared (added by hand) stays as Octavia lists it."""
    after = {m.target: m for m in members_after_up(live, declared, withdrawn)}
    assert {m.target: m for m in declared}.items() <= after.items()
    for m in live:
        if m.target not in {d.target for d in declared}:
            assert (after.get(m.target) == m) is (m.target not in withdrawn)


def test_a_removed_member_is_not_desired_while_octavia_still_lists_it():
    live = [Member("172.17.0.1", 443), Member("172.17.0.2", 443)]
    after = members_after_up(live, [Member("172.17.0.2", 443, weight=0)], ["172.17.0.1:443"])
    assert desired_targets(after) == frozenset()


def test_a_group_fed_by_a_tcp_and_a_udp_pool_targets_members_serving_in_both():
    tcp = [Member("172.17.0.1", 8443), Member("172.17.0.2", 8443), Member("172.17.0.3", 8443)]
    udp = [Member("172.17.0.1", 8443), Member("172.17.0.2", 8443, weight=0)]
    assert desired_in_every_pool([tcp, udp]) == frozenset({"172.17.0.1:8443"})
    assert desired_in_every_pool([tcp]) == desired_targets(tcp)


def test_a_draining_target_counts_as_gone():
    described = [Target("172.17.0.1:443", "healthy"), Target("172.17.0.2:443", "draining")]
    assert registered(described) == {"172.17.0.1:443"}


POOL = "0b7e8e8e-1f6a-4c1e-9d4e-2a1f8c3b5d6e"
OTHER = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/old-80/0123456789abcdef"


def spec_for(*pools: str) -> SyncSpec:
    return SyncSpec.from_props(
        {
            "loadbalancer_id": "5f0d7b1e-8c3a-4b2e-9f1d-6a7c8e9b0a1c",
            "bindings": [{"pool_id": p, "target_group_arn": ARN} for p in pools],
            "vpc_cidrs": ["10.10.0.0/16"],
        }
    )


def test_the_plan_registers_a_draining_member_that_serves_again_and_never_deregisters_it_twice():
    """The NLB lists a deregistered target as draining for its deregistration delay: a member
    that serves again in Octavia meanwhile is registered anew, one that does not is left to
    finish draining (deregistering it again would be a write for nothing)."""
    owned = {ARN: frozenset({"172.17.0.1:443", "172.17.0.2:443", "172.17.0.3:443"})}
    observed = Observed(
        members={POOL: [Member("172.17.0.1", 443), Member("172.17.0.2", 443)]},
        targets={
            ARN: (
                Target("172.17.0.1:443", "healthy"),
                Target("172.17.0.2:443", "draining"),
                Target("172.17.0.3:443", "draining"),
            )
        },
    )
    (plan,) = plan_groups(spec_for(POOL), observed, owned, {})
    assert plan.register == ("172.17.0.2:443",)
    assert plan.deregister == ()
    assert plan.owned_after == ("172.17.0.1:443", "172.17.0.2:443")


def test_the_plan_releases_a_group_no_binding_names_after_the_bound_ones():
    owned = {OTHER: frozenset({"172.17.1.1:80"}), ARN: frozenset({"172.17.0.1:443"})}
    observed = Observed(
        members={POOL: [Member("172.17.0.1", 443)]},
        targets={
            ARN: (Target("172.17.0.1:443", "healthy"),),
            OTHER: (Target("172.17.1.1:80", "healthy"), Target("172.17.1.2:80", "healthy")),
        },
    )
    bound, released = plan_groups(spec_for(POOL), observed, owned, {})
    assert (bound.target_group_arn, bound.is_noop) == (ARN, True)
    assert (released.target_group_arn, released.deregister) == (OTHER, ("172.17.1.1:80",))
