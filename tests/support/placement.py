"""Fleets of Prods and segments on clusters A, B and C, drawn by hypothesis."""

from __future__ import annotations

from hypothesis import strategies as st

from model.config import ProdSpec, Segment


@st.composite
def fleets(draw):
    """Prods on clusters A, B and C; segments on one Prod or a pair on two clusters."""
    slots = [f"{c}-{i}" for c in "ABC" for i in (1, 2)]
    names = draw(st.lists(st.sampled_from(slots), min_size=1, unique=True))
    prods = {
        n: ProdSpec(cluster=n[0], test=draw(st.booleans()), capacity=draw(st.integers(1, 20000)))
        for n in names
    }
    segments = []
    for i in range(draw(st.integers(0, 6))):
        first = draw(st.sampled_from(names))
        others = [n for n in names if n[0] != first[0]]
        pair = others and draw(st.booleans())
        chosen = (first, draw(st.sampled_from(others))) if pair else (first,)
        segments.append(Segment(name=f"s{i}", users=draw(st.integers(0, 9000)), prods=chosen))
    return prods, segments
