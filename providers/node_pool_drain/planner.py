"""What draining a node pool must do next, worked out from plain data; no I/O here.

Nodes are upgraded without downtime like this: create a new pool, cordon the old
pool's nodes, drain them (their Pods move to the new pool), delete the old pool. This module
decides the cordon and drain steps from snapshots of nodes and Pods: which Pods to evict, which
to leave alone and why, when the drain is finished, and how long to back off when a
PodDisruptionBudget says "not now". It also judges whether a new pool has enough Ready nodes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

POOL_LABEL = "cloud.google.com/gke-nodepool"
"""GKE puts this label on every node; its value is the node pool's name."""

MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
"""Set by the kubelet on the API copy of a static Pod."""

MAX_NAMED_PODS = 20
"""Errors name at most this many Pods, then say how many more there are."""


@dataclass(frozen=True, slots=True)
class Node:
    """A node of the pool: whether it runs workloads and whether it may take new ones."""

    name: str
    ready: bool
    unschedulable: bool = False


@dataclass(frozen=True, slots=True)
class Pod:
    """A Pod on one of the pool's nodes, as much of it as a drain needs."""

    namespace: str
    name: str
    node: str
    controller_kind: str | None = None
    mirror: bool = False
    terminating: bool = False

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


class Skip(StrEnum):
    """Why a Pod is left on a node that is being drained."""

    DAEMONSET = "owned by a DaemonSet, which would recreate it on the same node"
    MIRROR = "a mirror of a static Pod; only the kubelet can remove it"


@dataclass(frozen=True, slots=True)
class DrainPlan:
    """One look at the pool's Pods, sorted into what to do with each."""

    evict: tuple[Pod, ...]
    terminating: tuple[Pod, ...]
    skipped: tuple[tuple[Pod, Skip], ...]

    @property
    def done(self) -> bool:
        """Only DaemonSet and mirror Pods are left: the pool may be deleted."""
        return not self.evict and not self.terminating

    @property
    def blocking(self) -> tuple[Pod, ...]:
        """The Pods that keep the drain from finishing."""
        return (*self.evict, *self.terminating)


@dataclass(frozen=True, slots=True)
class Readiness:
    """How many of a pool's nodes are Ready, against how many are wanted."""

    pool: str
    ready: int
    registered: int
    wanted: int

    @property
    def done(self) -> bool:
        return self.ready >= self.wanted

    def summary(self) -> str:
        return (
            f"pool {self.pool}: {self.ready}/{self.wanted} nodes Ready "
            f"({self.registered} registered)"
        )


@dataclass(frozen=True, slots=True)
class Progress:
    """Pods evicted so far out of every evictable Pod the drain has seen, and how many of the
    rest a PodDisruptionBudget holds back (`held`, with one of them and the API's words)."""

    pool: str
    evicted: int
    total: int
    held: int = 0
    example: str = ""

    def summary(self) -> str:
        line = f"pool {self.pool}: {self.evicted}/{self.total} pods evicted"
        if self.held:
            line += f"; {self.held} held back by a PodDisruptionBudget, retrying ({self.example})"
        return line


def skip_reason(pod: Pod) -> Skip | None:
    """Why `pod` must not be evicted, or None if it must.

    Evicting a DaemonSet Pod is pointless (its controller ignores `unschedulable` and puts it
    straight back), and a mirror Pod cannot be evicted at all. `kubectl drain` skips both too.
    """
    if pod.mirror:
        return Skip.MIRROR
    if pod.controller_kind == "DaemonSet":
        return Skip.DAEMONSET
    return None


def plan_drain(pods: Iterable[Pod]) -> DrainPlan:
    """Sort the Pods on the pool's nodes: evict, wait for (already terminating), or skip."""
    evict: list[Pod] = []
    terminating: list[Pod] = []
    skipped: list[tuple[Pod, Skip]] = []
    for pod in sorted(pods, key=lambda p: (p.node, p.key)):
        reason = skip_reason(pod)
        if reason is not None:
            skipped.append((pod, reason))
        elif pod.terminating:
            terminating.append(pod)
        else:
            evict.append(pod)
    return DrainPlan(tuple(evict), tuple(terminating), tuple(skipped))


def to_cordon(nodes: Iterable[Node]) -> tuple[str, ...]:
    """Nodes still open to new Pods; cordoned nodes are left alone (no needless writes)."""
    return tuple(sorted(n.name for n in nodes if not n.unschedulable))


def readiness(pool: str, nodes: Iterable[Node], wanted: int) -> Readiness:
    listed = tuple(nodes)
    return Readiness(pool, sum(1 for n in listed if n.ready), len(listed), wanted)


def progress(
    pool: str, seen: Iterable[str], plan: DrainPlan, refused: Mapping[str, str] | None = None
) -> Progress:
    """`seen` is every evictable Pod key observed during this drain, including the current plan's;
    `refused` maps a Pod whose last eviction was refused (HTTP 429) to the API's reason.

    A Pod counts as evicted once the API accepted its eviction (it is terminating or gone). A
    refusal is progress to report, not a failure: the budget frees up as replacements turn Ready.
    """
    total = set(seen) | {p.key for p in plan.blocking}
    pending = {p.key for p in plan.evict}
    held = sorted(pending & set(refused or {}))
    example = f"{held[0]}: {(refused or {})[held[0]]}" if held else ""
    return Progress(pool, len(total - pending), len(total), len(held), example)


def backoff_seconds(attempt: int, *, base: float, cap: float) -> float:
    """Delay before retrying an eviction a PodDisruptionBudget refused `attempt` times.

    Doubling from `base` up to `cap`: a budget frees up when a replacement Pod on the new pool
    turns Ready, which takes seconds to minutes, so retrying faster only adds API load.
    """
    if attempt < 1:
        return 0.0
    return min(cap, base * 2 ** min(attempt - 1, 32))


def due(pods: Iterable[Pod], not_before: Mapping[str, float], now: float) -> tuple[Pod, ...]:
    """The Pods whose backoff has expired at `now` (a Pod never refused is always due)."""
    return tuple(p for p in pods if not_before.get(p.key, float("-inf")) <= now)


def describe_pods(pods: Iterable[Pod], reasons: Mapping[str, str]) -> str:
    """`ns/a (why), ns/b (why)`, capped at MAX_NAMED_PODS names."""
    listed = list(pods)
    named = [
        f"{p.key} ({reasons.get(p.key) or ('terminating' if p.terminating else 'not evicted')})"
        for p in listed[:MAX_NAMED_PODS]
    ]
    more = len(listed) - len(named)
    return ", ".join(named) + (f" and {more} more" if more > 0 else "")
