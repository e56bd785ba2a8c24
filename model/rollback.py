"""Rollback as a routing switch (pure): segments leave the Prods that run the new version for
Prods that still run the previous one. No Prod is redeployed; the edge proxies' configuration
changes, which takes seconds.

The same rules as placement: a Prod takes a segment only while its spare room (capacity minus
the users already placed on it) holds the whole segment; a redundant segment keeps its two Prods
on two clusters; drained clusters and test Prods take nobody. Largest segments go first, each to
the roomiest Prod, so one big segment is not starved by several small ones.
"""

from __future__ import annotations

from dataclasses import dataclass

from model.config import StackConfig
from model.fleet import drained_clusters
from model.placement import placement_for
from model.release import release_plan


class RollbackRefused(Exception):
    """No safe rollback exists; the message says which segment has nowhere to go."""


@dataclass(frozen=True, slots=True)
class Move:
    segment: str
    users: int
    before: tuple[str, ...]
    after: tuple[str, ...]


def rollback(config: StackConfig) -> list[Move]:
    """The segment moves that take every user off the new version, or RollbackRefused."""
    plan = release_plan(config)
    new = set(plan.updated())
    if not new:
        raise RollbackRefused(f"no Prod runs {plan.version} yet: nothing to roll back")
    drained = drained_clusters(config)
    previous = {
        name: spec
        for name, spec in config.prods.items()
        if name not in new and not spec.test and spec.cluster not in drained
    }
    load = dict(placement_for(config).load)
    moves = []
    for segment in sorted(config.segments, key=lambda s: (-s.users, s.name)):
        if not new & set(segment.prods):
            continue
        chosen = [p for p in segment.prods if p not in new]
        for _ in range(len(segment.prods) - len(chosen)):
            taken = {config.prods[p].cluster for p in chosen}
            room = {
                name: spec.capacity - load.get(name, 0)
                for name, spec in previous.items()
                if name not in chosen and spec.cluster not in taken
            }
            fits = [name for name, spare in room.items() if spare >= segment.users]
            if not fits:
                best = max(room.values(), default=0)
                where = f"{segment.name} ({segment.users} users, on {', '.join(segment.prods)})"
                raise RollbackRefused(
                    f"segment {where} fits on no Prod that runs {plan.previous_version}: "
                    f"the most spare room is {best} users. Raise a Prod's capacity, or roll "
                    "back with release.wave"
                )
            pick = max(fits, key=lambda name: (room[name], name))
            load[pick] = load.get(pick, 0) + segment.users
            chosen.append(pick)
        moves.append(Move(segment.name, segment.users, segment.prods, tuple(chosen)))
    return moves
