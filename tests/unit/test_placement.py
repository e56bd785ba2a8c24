"""Placement while clusters are drained, pure: re-placement, capacity, and config errors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from model.config import ConfigError, ProdSpec, Segment
from model.placement import place
from model.stack import parse
from tests.fixtures.program import raw_of
from tests.support.placement import fleets

# --- placement, pure ------------------------------------------------------------------------


def test_re_placement_picks_the_roomiest_prod_and_never_a_test_prod():
    prods = {
        "A-1": ProdSpec(cluster="A", capacity=5000),
        "B-1": ProdSpec(cluster="B", capacity=3000),
        "C-1": ProdSpec(cluster="C", capacity=4000),
        "C-9": ProdSpec(cluster="C", test=True, capacity=100000),
    }
    segments = [
        Segment(name="big", users=2500, prods=("A-1",)),
        Segment(name="small", users=900, prods=("A-1",)),
        Segment(name="here", users=1000, prods=("C-1",)),
    ]
    placement = place(prods, segments, drained={"A"})
    # C-1 has 3000 spare, B-1 3000: the name breaks the tie; then B-1 has 500, C-1 3000.
    assert [r.prod for r in placement.routes_of("big")] == ["B-1"]
    assert [r.prod for r in placement.routes_of("small")] == ["C-1"]
    assert placement.stranded == ()


def test_a_prod_below_the_users_it_serves_is_a_config_error():
    raw = raw_of()
    raw["prods"]["A-2"]["capacity"] = 4000
    with pytest.raises(ConfigError) as error:
        parse(raw)
    (problem,) = error.value.problems
    assert problem.startswith("hybrid-infra:prods.A-2.capacity: 4000 is below the 4200 users")


def test_prod_names_that_differ_only_in_case_are_a_config_error():
    raw = raw_of()
    raw["prods"]["a-1"] = {"cluster": "C", "capacity": 100}
    with pytest.raises(ConfigError) as error:
        parse(raw)
    assert error.value.problems == [
        "hybrid-infra:prods: A-1 and a-1 differ only in case; their Kubernetes namespaces "
        "(prod-a-1) would clash"
    ]


@pytest.mark.parametrize(
    ("key", "value", "start"),
    [
        ("image", "registry.example.net/shop/web:5", "hybrid-infra:app.image: give the image"),
        ("maxSurge", "0%", "hybrid-infra:app.maxSurge: must be above 0"),
    ],
)
def test_app_settings_no_rollout_could_use_are_config_errors(key, value, start):
    raw = raw_of()
    raw["app"][key] = value
    with pytest.raises(ConfigError) as error:
        parse(raw)
    (problem,) = error.value.problems
    assert problem.startswith(start)


@given(fleets(), st.sets(st.sampled_from("ABC")))
def test_every_segment_is_routed_off_drained_clusters_or_reported(fleet, drained):
    prods, segments = fleet
    placement = place(prods, segments, drained)
    routed = [s.segment for s in placement.segments]
    stranded = [s.segment for s in placement.stranded]
    assert sorted(routed + stranded) == sorted(s.name for s in segments)
    for routes in placement.segments:
        assert sum(r.weight for r in routes.routes) == 100
        assert all(prods[r.prod].cluster not in drained for r in routes.routes)
        if not {r.prod for r in routes.routes} <= set(routes.configured):
            # Re-placed, whole, on one Prod that is not the segment's own.
            (route,) = routes.routes
            assert not prods[route.prod].test
            # A Prod only takes moved users into room it has.
            assert placement.load[route.prod] <= prods[route.prod].capacity
    by_name = {s.name: s for s in segments}
    for stranded in placement.stranded:
        assert all(prods[p].cluster in drained for p in by_name[stranded.segment].prods)
