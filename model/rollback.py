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

from model.config import ProdSpec, StackConfig
from model.fleet import drained_clusters
from model.placement import placement_for
from model.release import ReleasePlan, release_plan


class RollbackRefused(Exception):
    """No safe rollback exists; the message says which segment has nowhere to go."""


@dataclass(frozen=True, slots=True)
class Move:
    segment: str
    users: int
    before: tuple[str, ...]
    after: tuple[str, ...]


def rollback(config: StackConfig) -> list[Move]:
    """The segment moves that take every user off the new version, or RollbackRefused.

    The refusals go from the most general reason to the most particular, so each names what
    really stands in the way: nothing to roll back; no Prod left on the previous version; Prods
    on it that take no users (test Prods, drained clusters); then, per segment, no such Prod
    on another cluster than its partner's; and only then, not enough spare room.
    """
    plan = release_plan(config)
    new = set(plan.updated())
    if not new:
        raise RollbackRefused(f"no Prod runs {plan.version} yet: nothing to roll back")
    previous = _previous_prods(config, plan)
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
            where = f"{segment.name} ({segment.users} users, on {', '.join(segment.prods)})"
            if not room:
                raise RollbackRefused(
                    f"segment {where} needs a second Prod on another cluster than "
                    f"{', '.join(sorted(taken))}, and every Prod that runs "
                    f"{plan.previous_version} and takes users ({', '.join(sorted(previous))}) "
                    "is on it: a redundant segment keeps its two Prods on two clusters. Roll "
                    "back with release.wave"
                )
            fits = [name for name, spare in room.items() if spare >= segment.users]
            if not fits:
                best = max(room, key=lambda name: (room[name], name))
                raise RollbackRefused(
                    f"segment {where} fits on no Prod that runs {plan.previous_version}: "
                    f"the most spare room is {room[best]} users, on {best}. Raise a Prod's "
                    "capacity, or roll back with release.wave"
                )
            pick = max(fits, key=lambda name: (room[name], name))
            load[pick] = load.get(pick, 0) + segment.users
            chosen.append(pick)
        moves.append(Move(segment.name, segment.users, segment.prods, tuple(chosen)))
    return moves


def _previous_prods(config: StackConfig, plan: ReleasePlan) -> dict[str, ProdSpec]:
    """The Prods that run the previous version and may take users, or why there are none."""
    previous_version = plan.previous_version
    on_previous = sorted(set(config.prods) - set(plan.updated()))
    if not on_previous:
        raise RollbackRefused(
            f"no Prod runs {previous_version} any more: at wave {plan.current} of {plan.last} "
            f"all {len(config.prods)} Prods run {plan.version}, so there is no Prod to move "
            "users to. Roll back with release.wave: set it lower, and `pulumi up` redeploys "
            f"the Prods of the later waves with {previous_version}"
        )
    drained = drained_clusters(config)
    usable = {
        name: config.prods[name]
        for name in on_previous
        if not config.prods[name].test and config.prods[name].cluster not in drained
    }
    if not usable:
        why = ", ".join(
            f"{name} (a test Prod)"
            if config.prods[name].test
            else f"{name} (cluster {config.prods[name].cluster} is drained)"
            for name in on_previous
        )
        raise RollbackRefused(
            f"the Prods that still run {previous_version} take no users: {why}. Roll back "
            "with release.wave, or undrain a cluster"
        )
    return usable
