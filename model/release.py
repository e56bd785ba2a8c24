"""The release plan: which Prods take a new version in which wave (pure; no Pulumi, no I/O).

The rule, in one sentence: **Prods go out tier by tier, one wave per non-empty tier — test
Prods, then small Prods (each serving at most 10% of all users), then Prods whose users are all
redundant, then the rest.**

Why these tiers: a test Prod breaks nobody; a small Prod
breaks few; a Prod whose every user also has a second Prod breaks nobody *if* routing fails
over; only then do non-redundant users take the new version. Each wave is checked and the next
starts only while no alert fires on an updated Prod (`tools.release.waves --advance`).

The plan is computed from the *configured* placement, never from the placement after a cluster
drain. Draining a cluster mid-release must not reshuffle the waves: a Prod that moved to a later
wave would be rolled back to the previous version.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from model.config import ProdSpec, Segment, StackConfig

Tier = Literal["test", "small", "redundant", "rest"]
TIERS: tuple[Tier, ...] = ("test", "small", "redundant", "rest")
SMALL_PERCENT = 10
"""A Prod serving at most this share of all users is "small"."""

ALERT_LABEL = "hybrid_infra_prod"
"""The label every alert about a Prod must carry, valued with the Prod's name (`C-1`).

It is what Prometheus makes of the pod label `hybrid-infra/prod` (kubernetes_sd exposes it as
`__meta_kubernetes_pod_label_hybrid_infra_prod`; relabel it to `hybrid_infra_prod`). An alert
without it cannot hold a wave back, because the gate cannot tell which Prod it is about.
"""


@dataclass(frozen=True, slots=True)
class Standing:
    """What the wave rule looks at for one Prod."""

    name: str
    cluster: str
    test: bool
    users: int
    """Users of every segment the Prod serves, in full: either Prod of a pair carries all."""
    redundant: bool
    """It serves at least one segment, and every segment it serves has a second Prod."""


@dataclass(frozen=True, slots=True)
class PlannedProd:
    name: str
    cluster: str
    users: int
    tier: Tier
    wave: int
    version: str


@dataclass(frozen=True, slots=True)
class Wave:
    number: int
    tier: Tier
    prods: tuple[PlannedProd, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.prods)


@dataclass(frozen=True, slots=True)
class ReleasePlan:
    """The waves of one release and how far it has gone (`current` waves are out)."""

    version: str
    previous_version: str
    current: int
    verified: bool
    waves: tuple[Wave, ...]

    @property
    def last(self) -> int:
        return len(self.waves)

    @property
    def prods(self) -> dict[str, PlannedProd]:
        return {p.name: p for wave in self.waves for p in wave.prods}

    @property
    def test_waves(self) -> int:
        """How many leading waves hold only test Prods (0 or 1)."""
        return sum(1 for w in self.waves if w.tier == "test")

    def updated(self) -> tuple[str, ...]:
        """Prods that run the new version now: those in waves up to `current`."""
        return tuple(p.name for w in self.waves[: self.current] for p in w.prods)

    def warming(self) -> tuple[str, ...]:
        """Prods that took the new version in the latest wave: the edge proxies ramp them up."""
        if not 0 < self.current <= self.last or self.version == self.previous_version:
            return ()
        return self.waves[self.current - 1].names

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the stack outputs and `tools.release.waves`."""
        return {
            "version": self.version,
            "previousVersion": self.previous_version,
            "wave": self.current,
            "lastWave": self.last,
            "verified": self.verified,
            "waves": [
                {
                    "wave": w.number,
                    "tier": w.tier,
                    "released": w.number <= self.current,
                    "prods": [
                        {
                            "prod": p.name,
                            "cluster": p.cluster,
                            "users": p.users,
                            "version": p.version,
                        }
                        for p in w.prods
                    ],
                }
                for w in self.waves
            ],
        }


def tier_of(standing: Standing, total_users: int) -> Tier:
    if standing.test:
        return "test"
    if standing.users * 100 <= SMALL_PERCENT * total_users:
        return "small"
    if standing.redundant:
        return "redundant"
    return "rest"


def assign_waves(
    standings: Iterable[Standing], total_users: int
) -> tuple[tuple[Tier, tuple[Standing, ...]], ...]:
    """The waves in order, each a tier and its Prods (ascending users, then name)."""
    by_tier: dict[Tier, list[Standing]] = {tier: [] for tier in TIERS}
    for standing in sorted(standings, key=lambda s: (s.users, s.name)):
        by_tier[tier_of(standing, total_users)].append(standing)
    return tuple((tier, tuple(by_tier[tier])) for tier in TIERS if by_tier[tier])


def standings_of(
    prods: Mapping[str, ProdSpec], segments: Sequence[Segment]
) -> tuple[Standing, ...]:
    """Each Prod with the users of the segments configured on it."""
    users = dict.fromkeys(prods, 0)
    redundant: dict[str, list[bool]] = {name: [] for name in prods}
    for segment in segments:
        for prod in segment.prods:
            if prod in users:
                users[prod] += segment.users
                redundant[prod].append(len(segment.prods) == 2)
    return tuple(
        Standing(
            name=name,
            cluster=prod.cluster,
            test=prod.test,
            users=users[name],
            redundant=bool(redundant[name]) and all(redundant[name]),
        )
        for name, prod in prods.items()
    )


def plan_release(
    prods: Mapping[str, ProdSpec],
    segments: Sequence[Segment],
    version: str,
    previous_version: str,
    current: int,
    verified: bool = False,
) -> ReleasePlan:
    """Waves up to `current` run `version`; later ones still run `previous_version`.

    All users count each segment once, so a redundant pair does not double its weight.
    """
    total_users = sum(s.users for s in segments)
    waves = []
    for number, (tier, members) in enumerate(
        assign_waves(standings_of(prods, segments), total_users), start=1
    ):
        running = version if number <= current else previous_version
        planned = tuple(
            PlannedProd(s.name, s.cluster, s.users, tier, number, running) for s in members
        )
        waves.append(Wave(number, tier, planned))
    return ReleasePlan(version, previous_version, current, verified, tuple(waves))


def release_plan(config: StackConfig) -> ReleasePlan:
    """The plan of the stack's release; a stack without `release` has no waves."""
    if config.release is None:
        return ReleasePlan("", "", 0, False, ())
    release = config.release
    return plan_release(
        config.prods,
        config.segments,
        release.version,
        release.previous_version,
        release.wave,
        release.verified,
    )


def alert_matcher(prods: Iterable[str]) -> str:
    """The Alertmanager v2 `filter` matcher for alerts about any of `prods`."""
    names = sorted(set(prods))
    return f'{ALERT_LABEL}=~"{"|".join(_regex_literal(n) for n in names)}"'


def firing_on(alerts: Iterable[Mapping[str, Any]], prods: Iterable[str]) -> list[tuple[str, str]]:
    """(alertname, Prod) for each alert about one of `prods`, checked again on our side."""
    wanted = set(prods)
    found = []
    for alert in alerts:
        labels = alert.get("labels") or {}
        prod = labels.get(ALERT_LABEL)
        if prod in wanted:
            found.append((str(labels.get("alertname", "<unnamed>")), str(prod)))
    return sorted(found)


def describe_waves(plan: ReleasePlan) -> str:
    """`1: C-2 | 2: C-1 | 3: B-1 A-2 | 4: B-2 A-1` — for one-line messages."""
    return " | ".join(f"{w.number}: {' '.join(w.names)}" for w in plan.waves) or "no waves"


def _regex_literal(name: str) -> str:
    """Prod names are `[A-Za-z0-9-]`; escape anyway so the matcher stays exact for any name."""
    return "".join(c if c.isalnum() else "\\" + c for c in name)
