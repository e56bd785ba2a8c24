"""Where each segment's users go: their configured Prods, or elsewhere while a cluster is
drained (pure; no Pulumi, no I/O).

When a cluster fails, redundant users keep service on their other Prod, and non-redundant
users on the failed cluster are moved to another Prod. A cluster is failed (or
being upgraded) when the stack file says `clusters.<name>.drained: true`; an on-prem cluster's
EKS twin is drained with it (the fleet gives the twin its cluster's `drained`).

- A segment with a Prod on a cluster that is not drained stays on those Prods, with requests
  split evenly between them.
- A segment whose every Prod is drained is re-placed, whole, on one Prod of a cluster that is not
  drained and has spare capacity: its capacity minus the users already placed on it. Largest
  segments go first, each to the Prod with the most spare room, so one big segment is not
  starved by several small ones. Test Prods never take users: they run versions first.
- A segment of a redundant pair counts in full on each of its Prods. Either one must be able
  to carry the whole segment when the other fails, so that is the room it really takes.

Prods on a drained cluster stay built; they just get no requests until the cluster is undrained.

**Fallbacks** are the same decision taken in advance, for a cluster that fails before anyone
drains it: for each segment, where `place` would send it if the cluster of its Prods were
drained, now. Edge proxies hold those Prods as backup servers and switch to them on their own.
A failure drains one cluster, not its EKS twin (which is built to carry it), so the twin is a
candidate here while a stack-file drain of the on-prem cluster takes its twin too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from model.config import ProdSpec, Segment, StackConfig
from model.fleet import drained_clusters

FULL = 100
"""Route weights are percentages of the segment's requests."""


@dataclass(frozen=True, slots=True)
class Route:
    prod: str
    cluster: str
    weight: int


@dataclass(frozen=True, slots=True)
class SegmentRoutes:
    segment: str
    users: int
    configured: tuple[str, ...]
    routes: tuple[Route, ...]

    @property
    def moved(self) -> bool:
        """Served by other Prods than the stack file places it on (a drain is in effect)."""
        return tuple(r.prod for r in self.routes) != self.configured


@dataclass(frozen=True, slots=True)
class Stranded:
    """A segment that no Prod can take while its clusters are drained."""

    segment: str
    users: int
    clusters: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Placement:
    segments: tuple[SegmentRoutes, ...]
    stranded: tuple[Stranded, ...]
    drained: frozenset[str]
    load: Mapping[str, int]
    """Users placed on each Prod (a redundant segment counts in full on both)."""

    def routes_of(self, segment: str) -> tuple[Route, ...]:
        return next(s.routes for s in self.segments if s.segment == segment)


@dataclass(frozen=True, slots=True)
class Fallbacks:
    """Where each segment goes if the cluster of its Prods fails, decided before it does."""

    routes: Mapping[str, tuple[Route, ...]]
    """Segment → the Prods a drain of its cluster would move it to (empty when it needs none)."""
    uncovered: tuple[Stranded, ...]
    """Segments that one cluster's failure leaves with no Prod; `clusters` names that cluster."""

    def warnings(self) -> list[str]:
        """One line per uncovered segment, for the preview: the failure it does not survive."""
        return [
            f"segment {s.segment} ({s.users} users) has no fallback: no Prod off {cluster} has "
            f"room for it, so if {cluster} fails its users get errors until {cluster} is back; "
            "give a Prod elsewhere the spare capacity, or a second Prod to the segment"
            for s in self.uncovered
            for cluster in s.clusters
        ]


def place(
    prods: Mapping[str, ProdSpec], segments: Sequence[Segment], drained: Iterable[str] = ()
) -> Placement:
    """Route every segment to Prods on clusters that are not drained, or report it stranded."""
    down = frozenset(drained)
    load = dict.fromkeys(prods, 0)
    placed: dict[str, SegmentRoutes] = {}
    homeless: list[Segment] = []
    for segment in segments:
        live = [p for p in segment.prods if p in prods and prods[p].cluster not in down]
        if not live:
            homeless.append(segment)
            continue
        for prod in live:
            load[prod] += segment.users
        placed[segment.name] = _routes(segment, live, prods)

    stranded = []
    for segment in sorted(homeless, key=lambda s: (-s.users, s.name)):
        target = roomiest(prods, load, down, segment.users)
        if target is None:
            clusters = sorted({prods[p].cluster for p in segment.prods if p in prods})
            stranded.append(Stranded(segment.name, segment.users, tuple(clusters)))
            continue
        load[target] += segment.users
        placed[segment.name] = _routes(segment, [target], prods)
    ordered = tuple(placed[s.name] for s in segments if s.name in placed)
    return Placement(ordered, tuple(stranded), down, load)


def fallbacks(
    prods: Mapping[str, ProdSpec], segments: Sequence[Segment], drained: Iterable[str] = ()
) -> Fallbacks:
    """For each segment, the placement with its Prods' cluster drained too: the Prods it adds.

    All of a cluster's segments are re-placed together, largest first, into the room the
    others leave: exactly what draining that cluster would do, so backups never overbook a
    Prod. A segment whose Prods span two clusters needs none: either cluster alone keeps it.
    """
    now = place(prods, segments, drained)
    without = {
        cluster: place(prods, segments, now.drained | {cluster})
        for cluster in sorted({r.cluster for s in now.segments for r in s.routes})
    }
    routes: dict[str, tuple[Route, ...]] = {}
    uncovered = []
    for current in now.segments:
        serving = {r.prod for r in current.routes}
        added: list[Route] = []
        for cluster in sorted({r.cluster for r in current.routes}):
            failed = without[cluster]
            if any(s.segment == current.segment for s in failed.stranded):
                uncovered.append(Stranded(current.segment, current.users, (cluster,)))
                continue
            added += [r for r in failed.routes_of(current.segment) if r.prod not in serving]
        routes[current.segment] = tuple(added)
    return Fallbacks(routes, tuple(uncovered))


def fallbacks_for(config: StackConfig) -> Fallbacks:
    return fallbacks(config.prods, config.segments, drained_clusters(config))


def spare(prods: Mapping[str, ProdSpec], load: Mapping[str, int], prod: str) -> int:
    return prods[prod].capacity - load.get(prod, 0)


def placement_for(config: StackConfig) -> Placement:
    return place(config.prods, config.segments, drained_clusters(config))


def _routes(segment: Segment, live: Sequence[str], prods: Mapping[str, ProdSpec]) -> SegmentRoutes:
    weights = _even(len(live))
    return SegmentRoutes(
        segment=segment.name,
        users=segment.users,
        configured=segment.prods,
        routes=tuple(Route(p, prods[p].cluster, w) for p, w in zip(live, weights, strict=True)),
    )


def _even(n: int) -> list[int]:
    """`n` integer weights summing to 100, as even as integers allow."""
    base, extra = divmod(FULL, n)
    return [base + (1 if i < extra else 0) for i in range(n)]


def roomiest(
    prods: Mapping[str, ProdSpec], load: Mapping[str, int], down: frozenset[str], users: int
) -> str | None:
    """The non-test Prod off drained clusters with the most spare room, if it fits `users`."""
    candidates = [
        (spare(prods, load, name), name)
        for name, prod in prods.items()
        if not prod.test and prod.cluster not in down
    ]
    candidates = [c for c in candidates if c[0] >= users]
    if not candidates:
        return None
    return min(candidates, key=lambda c: (-c[0], c[1]))[1]
