"""One sync, read → plan → apply: both sides are read first (at once), planned in the pure
planner, and only then written, so a failed or suspicious read stops it before the first write.
Each step returns what it found or did; the provider turns that into the engine's answers.

As the AWS Load Balancer Controller splits its target sync, the reads and writes are the
shells' (`octavia`, `elbv2`), the decisions the planner's, and this module only orders them.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pulumi

from providers.octavia_nlb_sync import elbv2, octavia
from providers.octavia_nlb_sync.planner import (
    GroupPlan,
    Member,
    Target,
    desired_in_every_pool,
    members_after_up,
    plan_group,
    plan_release,
    registered,
    target_group_label,
)
from providers.octavia_nlb_sync.spec import SyncSpec, refuse_foreign_pools

READ_CONCURRENCY = 8
"""Reads in flight per sync; the host runs up to 4 syncs at once (its gRPC thread pool)."""

Owned = Mapping[str, frozenset[str]]
"""Target group → the targets this resource registered there."""


@dataclass(frozen=True, slots=True)
class Observed:
    """Both sides as one read found them."""

    members: Mapping[str, list[Member]]
    """Bound pool → its members, as Octavia lists them."""
    targets: Mapping[str, tuple[Target, ...]]
    """Target group → its targets: every bound group, and each released one still there."""


@dataclass(frozen=True, slots=True)
class Synced:
    """What a sync did: its plans, carried out, and the writes they took."""

    plans: tuple[GroupPlan, ...]
    registered: int
    deregistered: int

    def owned(self, spec: SyncSpec) -> dict[str, list[str]]:
        """Bound group → the targets the resource owns there now (released groups: none)."""
        bound = spec.pools_by_group()
        return {
            p.target_group_arn: list(p.owned_after)
            for p in self.plans
            if p.target_group_arn in bound
        }


def plan(
    spec: SyncSpec,
    owned: Owned,
    withdrawn: Owned | None = None,
    *,
    guarded: bool = True,
) -> list[GroupPlan]:
    """Read both sides and plan every group; writes nothing (what a preview shows)."""
    return plan_groups(spec, read(spec, owned), owned, withdrawn or {}, guarded=guarded)


def run(spec: SyncSpec, owned: Owned, withdrawn: Owned | None = None) -> Synced:
    """Read, plan, then write: the sync `create` and `update` carry out."""
    return apply(spec, plan(spec, owned, withdrawn))


def read(spec: SyncSpec, owned: Owned) -> Observed:
    """Both sides, raising before any write on a failed read or a pool of another LB.

    Credentials refused on a cached client or connection are retried once on new ones (a read
    changes nothing, so it is safe).
    """
    try:
        return _read(spec, owned)
    except Exception as error:
        if not (octavia.is_auth_error(error) or elbv2.is_auth_error(error)):
            raise
        pulumi.log.warn(f"octavia lb {spec.loadbalancer_id}: credentials refused; reconnecting")
        octavia.forget_connections()
        elbv2.forget_clients()
        return _read(spec, owned)


def _read(spec: SyncSpec, owned: Owned) -> Observed:
    """The reads are independent, so they run at once (at most READ_CONCURRENCY in flight):
    the LB, each pool's members, each target group's targets. Their results are taken in the
    order the plan uses them, so the first failure raised is the one sequential reads would
    have hit."""
    conn = octavia.connect(spec.os_cloud, spec.os_password)
    client = elbv2.client(spec.aws_region)
    groups = spec.pools_by_group()
    pools = sorted({pool for pools in groups.values() for pool in pools})
    released = _released(spec, owned)
    with ThreadPoolExecutor(max_workers=READ_CONCURRENCY) as reads:
        lb_pools = reads.submit(octavia.read_pool_ids, conn, spec.loadbalancer_id)
        members = {pool: reads.submit(octavia.read_members, conn, pool) for pool in pools}
        targets = {arn: reads.submit(elbv2.list_targets, client, arn) for arn in groups}
        leftovers = {arn: reads.submit(_targets_if_any, client, arn) for arn in released}
        refuse_foreign_pools(spec, pools, lb_pools.result())
        found_members: dict[str, list[Member]] = {}
        found_targets: dict[str, tuple[Target, ...]] = {}
        for arn, bound_pools in groups.items():
            for pool in bound_pools:
                found_members[pool] = members[pool].result()
            found_targets[arn] = targets[arn].result()
        for arn in released:
            found_targets[arn] = leftovers[arn].result()
    return Observed(found_members, found_targets)


def plan_groups(
    spec: SyncSpec,
    observed: Observed,
    owned: Owned,
    withdrawn: Owned,
    *,
    guarded: bool = True,
) -> list[GroupPlan]:
    """Every bound group's plan, in binding order, then the release of each group no binding
    names any more; pure, and it raises `SyncRefused` on a plan that looks like a bad read."""
    declared = spec.declared()
    plans = []
    for arn, bound_pools in spec.pools_by_group().items():
        per_pool = []
        for pool in bound_pools:
            live = observed.members[pool]
            if pool in declared:
                live = members_after_up(live, declared[pool], withdrawn.get(pool, frozenset()))
            per_pool.append(live)
        plans.append(
            plan_group(
                arn,
                desired_in_every_pool(per_pool),
                registered(observed.targets[arn]),
                owned.get(arn, frozenset()),
                owns_target_group=spec.owns_target_groups,
                max_deregister_fraction=spec.max_deregister_fraction,
                guarded=guarded,
            )
        )
    for arn in _released(spec, owned):
        plans.append(plan_release(arn, registered(observed.targets[arn]), owned[arn]))
    return plans


def apply(spec: SyncSpec, plans: list[GroupPlan]) -> Synced:
    """Carry the plans out: deregister everywhere before registering anywhere, so a drained
    member stops receiving new flows first and its deregistration delay starts as early as
    possible. A no-op makes no call at all."""
    writes = [p for p in plans if not p.is_noop]
    deregistered = registered_count = 0
    if writes:
        client = elbv2.client(spec.aws_region)
        deregistered = sum(
            elbv2.deregister(client, p.target_group_arn, p.deregister, spec.vpc_cidrs)
            for p in writes
        )
        registered_count = sum(
            elbv2.register(client, p.target_group_arn, p.register, spec.vpc_cidrs) for p in writes
        )
    for p in plans:
        pulumi.log.info(f"{p.summary()} targets synced")
    return Synced(tuple(plans), registered_count, deregistered)


def release(spec: SyncSpec, owned: Owned) -> list[GroupPlan]:
    """Deregister the targets this resource registered, group by group; leave everything else.
    Octavia is not read: a resource goes away whether or not Octavia answers."""
    client = elbv2.client(spec.aws_region)
    done = []
    for arn, keys in owned.items():
        group = plan_release(arn, registered(_targets_if_any(client, arn)), keys)
        elbv2.deregister(client, arn, group.deregister, spec.vpc_cidrs)
        pulumi.log.info(f"{group.summary()} targets released")
        done.append(group)
    return done


def still_registered(spec: SyncSpec, owned: Owned) -> dict[str, list[str]]:
    """Target group → the owned targets still in it (a refresh); reads the NLB only."""
    client = elbv2.client(spec.aws_region)
    return {
        arn: sorted(keys & registered(_targets_if_any(client, arn))) for arn, keys in owned.items()
    }


def verify_ids(spec: SyncSpec) -> None:
    """One read (the LB lists its pools): raises `OctaviaNotFound` for a load balancer Octavia
    does not know or a bound pool that is not that LB's, `OctaviaUnavailable` if it is down."""
    conn = octavia.connect(spec.os_cloud, spec.os_password)
    lb_pools = octavia.read_pool_ids(conn, spec.loadbalancer_id)
    refuse_foreign_pools(spec, [b.pool_id for b in spec.bindings], lb_pools)


def pending(plans: list[GroupPlan]) -> dict[str, str]:
    """`{target_group_arn: "+2 -1"}` for every group a sync would change."""
    return {
        p.target_group_arn: f"+{len(p.register)} -{len(p.deregister)}"
        for p in plans
        if not p.is_noop
    }


def _released(spec: SyncSpec, owned: Owned) -> list[str]:
    """The groups the resource owns targets in that no binding names any more."""
    groups = spec.pools_by_group()
    return sorted(arn for arn in owned if arn not in groups)


def _targets_if_any(client: Any, arn: str) -> tuple[Target, ...]:
    """A group's targets; none when the group is gone (there is nothing left to release)."""
    try:
        return elbv2.list_targets(client, arn)
    except elbv2.ElbUnavailable as error:
        if elbv2.is_target_group_not_found(error.__cause__ or error):
            pulumi.log.info(f"{target_group_label(arn)}: target group is gone; nothing to release")
            return ()
        raise
