"""What a sync must change, worked out from plain data; no I/O here.

Targets are keyed `ip:port`, as the NLB keys them. The planner matches the targets an Octavia
pool wants against what the target group has, then decides which to deregister (first, so a
drained member stops taking connections before anything else moves) and which to register.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, ip_address

MAX_TARGETS_PER_CALL = 200


class SyncRefused(Exception):
    """A plan looked like the product of a bad read; nothing was changed."""


@dataclass(frozen=True, slots=True)
class Member:
    """An Octavia pool member, as much of it as the NLB cares about."""

    address: str
    protocol_port: int
    weight: int = 1
    admin_state_up: bool = True

    @property
    def target(self) -> str:
        return target_key(self.address, self.protocol_port)

    @property
    def serving(self) -> bool:
        """Weight 0 or admin-down is Octavia's drain: the NLB must stop sending to it too."""
        return self.admin_state_up and self.weight > 0


@dataclass(frozen=True, slots=True)
class Target:
    """A target as the NLB describes it: `ip:port` and its health state."""

    key: str
    state: str


def registered(targets: Iterable[Target]) -> frozenset[str]:
    """The targets that count as in the group: a draining one is already deregistered (it only
    finishes its connections), so it is neither deregistered again nor taken as present, and a
    member that serves again is registered anew."""
    return frozenset(t.key for t in targets if t.state != "draining")


@dataclass(frozen=True, slots=True)
class GroupPlan:
    """The changes to one target group, and what the resource owns there afterwards."""

    target_group_arn: str
    register: tuple[str, ...]
    deregister: tuple[str, ...]
    owned_after: tuple[str, ...]

    @property
    def is_noop(self) -> bool:
        return not self.register and not self.deregister

    def summary(self) -> str:
        label = target_group_label(self.target_group_arn)
        return f"{label}: +{len(self.register)} -{len(self.deregister)}"


def target_key(address: str, port: int) -> str:
    return f"{address}:{port}"


def split_target(key: str) -> tuple[str, int]:
    address, _, port = key.rpartition(":")
    return address, int(port)


def target_group_label(arn: str) -> str:
    """`arn:...:targetgroup/shop-443/0123abcd` reads as `tg/shop-443` in logs."""
    parts = arn.split(":")[-1].split("/")
    return f"tg/{parts[1]}" if len(parts) >= 2 else arn


def desired_targets(members: Iterable[Member]) -> frozenset[str]:
    return frozenset(m.target for m in members if m.serving)


def desired_in_every_pool(pools: Sequence[Iterable[Member]]) -> frozenset[str]:
    """Targets for a group fed by several pools: those serving in all of them.

    A TCP_UDP target group (a TCP and a UDP listener on one port) sends both transports to
    every target, so a member of the TCP pool alone would get UDP it does not serve.
    """
    sets = [desired_targets(members) for members in pools]
    return frozenset.intersection(*sets) if sets else frozenset()


def members_after_up(
    live: Iterable[Member], declared: Sequence[Member], withdrawn: Iterable[str]
) -> list[Member]:
    """A pool's members as they will be when the `up` that runs this sync has finished.

    Why not Octavia's answer alone: when the stack declares the members, the engine creates and
    updates them before the sync (it depends on them) but deletes removed ones only after every
    other step. So a removed member (`withdrawn`: declared before, not now) is still in Octavia
    while the sync runs; it must be deregistered now, before Octavia deletes it, not one `up`
    late. A preview sees declared changes that are not applied yet the same way. Members the
    stack never declared (added in Octavia by hand) count as Octavia lists them.
    """
    gone = frozenset(withdrawn)
    merged = {m.target: m for m in live if m.target not in gone}
    merged.update({m.target: m for m in declared})
    return [merged[key] for key in sorted(merged)]


def plan_group(
    target_group_arn: str,
    desired: frozenset[str],
    actual: frozenset[str],
    owned: frozenset[str],
    *,
    owns_target_group: bool = False,
    max_deregister_fraction: float = 0.5,
    guarded: bool = True,
) -> GroupPlan:
    """Match desired against actual within the resource's scope, or refuse a suspicious plan.

    Scope is what this resource registered (`owned`), or every target when it owns the group:
    a target someone else registered by hand is never touched. After the sync the resource owns
    exactly `desired`, which also adopts targets a half-finished earlier sync left behind.

    The guard (`guarded`) refuses a plan that would empty the group of its owned targets, or
    whose net loss (deregistered minus registered) exceeds `max_deregister_fraction` of them.
    An Octavia read that comes back empty or collapsed looks exactly like that; a rolling
    replacement of members (one out, one in) does not.
    """
    scope = actual if owns_target_group else owned & actual
    deregister = sorted(scope - desired)
    register = sorted(desired - actual)
    if guarded and deregister:
        _guard(target_group_arn, scope, desired, deregister, register, max_deregister_fraction)
    return GroupPlan(target_group_arn, tuple(register), tuple(deregister), tuple(sorted(desired)))


def plan_release(target_group_arn: str, actual: frozenset[str], owned: frozenset[str]) -> GroupPlan:
    """Give back every owned target: the binding was removed or the resource deleted."""
    return GroupPlan(target_group_arn, (), tuple(sorted(owned & actual)), ())


def _guard(
    arn: str,
    scope: frozenset[str],
    desired: frozenset[str],
    deregister: Sequence[str],
    register: Sequence[str],
    fraction: float,
) -> None:
    label = target_group_label(arn)
    if not desired:
        raise SyncRefused(
            f"{label}: Octavia lists no serving member, so the sync would deregister all "
            f"{len(scope)} targets; refusing and changing nothing. If the pool really is empty, "
            "remove its binding (or the load balancer) instead."
        )
    net_loss = len(deregister) - len(register)
    if net_loss > fraction * len(scope):
        raise SyncRefused(
            f"{label}: the sync would deregister {len(deregister)} of {len(scope)} targets "
            f"(net loss {net_loss}, over the limit of {fraction:.0%}); refusing and changing "
            "nothing. Check the Octavia pool; if the shrink is intended, raise "
            "nlb.maxDeregisterFraction for this update or scale down in smaller steps."
        )


def chunks(targets: Sequence[str], size: int = MAX_TARGETS_PER_CALL) -> Iterator[tuple[str, ...]]:
    """ELBv2 takes at most 200 targets per register/deregister call."""
    for start in range(0, len(targets), size):
        yield tuple(targets[start : start + size])


def needs_zone_all(address: str, vpc_cidrs: Iterable[IPv4Network]) -> bool:
    """An IP outside the VPC (on-prem, over Direct Connect) must be registered in zone `all`."""
    ip = ip_address(address)
    return isinstance(ip, IPv4Address) and not any(ip in cidr for cidr in vpc_cidrs)
