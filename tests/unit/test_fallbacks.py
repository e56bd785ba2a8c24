"""Fallbacks (pure): where each segment goes if the cluster of its Prods fails is where a drain
of that cluster would send it, decided in advance, within the room the Prods have."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from model.config import ProdSpec, Segment
from model.placement import fallbacks, place
from tests.support.placement import fleets


@given(fleets(), st.sets(st.sampled_from("ABC"), max_size=1))
def test_a_fallback_is_where_draining_the_failed_cluster_sends_the_segment(fleet, drained):
    prods, segments = fleet
    now = place(prods, segments, drained)
    backups = fallbacks(prods, segments, drained)
    uncovered = {s.segment: s.clusters for s in backups.uncovered}
    for current in now.segments:
        clusters = {r.cluster for r in current.routes}
        added = backups.routes[current.segment]
        if len(clusters) > 1:
            # Either cluster alone keeps the segment: nothing to add, nothing uncovered.
            assert added == () and current.segment not in uncovered
            continue
        (cluster,) = clusters
        drain = place(prods, segments, now.drained | {cluster})
        if current.segment in uncovered:
            assert added == () and uncovered[current.segment] == (cluster,)
            assert current.segment in {s.segment for s in drain.stranded}
        else:
            assert added == drain.routes_of(current.segment)
            assert all(prods[r.prod].cluster != cluster and not prods[r.prod].test for r in added)


@given(fleets())
def test_the_fallbacks_of_one_cluster_s_segments_fit_their_prods_together(fleet):
    """When a cluster fails, all its segments land on their backups at once: no backup Prod
    may end up with more users than its capacity."""
    prods, segments = fleet
    now = place(prods, segments)
    backups = fallbacks(prods, segments)
    for cluster in {p.cluster for p in prods.values()}:
        load = {p: users for p, users in now.load.items() if prods[p].cluster != cluster}
        for current in now.segments:
            if {r.cluster for r in current.routes} == {cluster}:
                for route in backups.routes[current.segment]:
                    load[route.prod] += current.users
        for prod, users in load.items():
            taken = users - now.load[prod]
            assert taken == 0 or users <= prods[prod].capacity, (prod, users)


def test_an_on_prem_cluster_s_segment_falls_back_to_its_twin_which_outlives_it():
    """A failure takes one cluster, not its EKS twin, which is sized to carry it."""
    prods = {
        "A-1": ProdSpec(cluster="A", capacity=3000),
        "E-1": ProdSpec(cluster="A-eks", capacity=3000),
        "B-1": ProdSpec(cluster="B", capacity=3000),
    }
    segments = [
        Segment(name="shop", users=2500, prods=("A-1",)),
        Segment(name="beta", users=400, prods=("E-1",)),
        Segment(name="big", users=2700, prods=("B-1",)),
    ]
    backups = fallbacks(prods, segments)
    assert [r.prod for r in backups.routes["shop"]] == ["E-1"]
    assert [r.prod for r in backups.routes["beta"]] == ["A-1"]
    # The most room off B is E-1's 2600 once beta is on it: big fits nowhere, the preview says so.
    assert backups.routes["big"] == ()
    (warning,) = backups.warnings()
    assert warning.startswith("segment big (2700 users) has no fallback: no Prod off B has room")
