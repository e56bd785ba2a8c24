"""NLB: each target group holds exactly the Octavia pools' serving members, and each target is
healthy.

Equality is the sync's own judgement, not a second opinion: Octavia's members and the group's
targets are read through the sync's shells (`providers.octavia_nlb_sync`), and its planner
plans the group read-only (no guard, nothing written). A plan with anything to do is a pending
change: a stale target the next `up` deregisters, a member it registers. Targets someone
registered by hand are outside the sync's scope (unless it owns the group) and are named, not
failed. Health is DescribeTargetHealth's state per target, with AWS's reason code.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from providers.octavia_nlb_sync import octavia
from providers.octavia_nlb_sync.planner import (
    Member,
    desired_in_every_pool,
    plan_group,
    target_group_label,
    target_key,
)
from tools.verify import aws
from tools.verify.context import Context
from tools.verify.outputs import LoadBalancer, Sync
from tools.verify.report import Row, fail, ok
from tools.verify.runner import Probe, Unchecked

TARGETS = "nlb targets"
HEALTH = "nlb health"
ACCESS = "openstack"
SHOWN = 5
"""Targets listed by name in a detail; the rest are counted."""


@dataclass(frozen=True, slots=True)
class Target:
    """One target as DescribeTargetHealth reports it."""

    key: str
    state: str
    reason: str = ""

    @classmethod
    def from_description(cls, described: Mapping[str, Any]) -> Target:
        health = described.get("TargetHealth") or {}
        return cls(
            key=target_key(str(described["Target"]["Id"]), int(described["Target"]["Port"])),
            state=str(health.get("State", "unknown")),
            reason=str(health.get("Reason") or ""),
        )


def probes(ctx: Context) -> list[Probe]:
    return [
        Probe(
            TARGETS,
            f"{lb.name} {target_group_label(arn)}",
            partial(check_group, ctx, lb, lb.sync, arn, pools),
        )
        for lb in ctx.outputs.load_balancers
        if lb.sync is not None
        for arn, pools in _groups(lb.sync).items()
    ]


def _groups(sync: Sync) -> dict[str, tuple[str, ...]]:
    """Target group → the pools that feed it (a TCP_UDP group is fed by two)."""
    groups: dict[str, tuple[str, ...]] = {}
    for pool, arn in sync.bindings:
        groups[arn] = (*groups.get(arn, ()), pool)
    return groups


# --- judging (pure) -------------------------------------------------------------------------


def judge_targets(
    subject: str,
    sync: Sync,
    arn: str,
    pools: Sequence[Sequence[Member]],
    targets: Sequence[Target],
) -> Row:
    """The group against the pools, as the sync's planner sees it."""
    actual = frozenset(t.key for t in targets if t.state != "draining")
    desired = desired_in_every_pool(pools)
    plan = plan_group(
        arn,
        desired,
        actual,
        sync.owned.get(arn, frozenset()),
        owns_target_group=sync.owns_target_groups,
        guarded=False,
    )
    by_hand = sorted(actual - desired - set(plan.deregister))
    note = f"; registered by hand, left alone: {_listed(by_hand)}" if by_hand else ""
    if plan.is_noop:
        return ok(TARGETS, subject, f"{len(desired)} targets = Octavia's serving members{note}")
    changes = []
    if plan.deregister:
        changes.append(f"deregister {_listed(plan.deregister)} (no longer serving in Octavia)")
    if plan.register:
        changes.append(f"register {_listed(plan.register)} (serving in Octavia, not a target)")
    return fail(
        TARGETS,
        subject,
        f"sync pending {plan.summary().partition(': ')[2]}: {'; '.join(changes)}{note}. "
        "Run `pulumi up` (the Deployments drift run does within 10 minutes)",
    )


def judge_health(subject: str, targets: Sequence[Target]) -> Row:
    """Every target that is not on its way out must be `healthy`; the others are named with
    AWS's reason code (Target.FailedHealthChecks, Target.Timeout, Elb.InitialHealthChecking,
    ...)."""
    serving = [t for t in targets if t.state != "draining"]
    draining = len(targets) - len(serving)
    leaving = f"; {draining} draining" if draining else ""
    if not serving:
        return fail(HEALTH, subject, f"no target: the NLB side of this port serves nobody{leaving}")
    sick = [t for t in serving if t.state != "healthy"]
    if not sick:
        return ok(HEALTH, subject, f"{len(serving)} of {len(serving)} healthy{leaving}")
    named = _listed([f"{t.key} {t.state}{f' {t.reason}' if t.reason else ''}" for t in sick])
    hint = ""
    if any(t.reason == "Elb.InitialHealthChecking" for t in sick):
        hint = " (initial checks still running: run verify again in a minute)"
    return fail(HEALTH, subject, f"{len(sick)} of {len(serving)} not healthy: {named}{hint}")


def _listed(items: Iterable[str]) -> str:
    items = list(items)
    more = f" and {len(items) - SHOWN} more" if len(items) > SHOWN else ""
    return ", ".join(items[:SHOWN]) + more


# --- reading --------------------------------------------------------------------------------


def check_group(
    ctx: Context, lb: LoadBalancer, sync: Sync, arn: str, pools: Sequence[str]
) -> list[Row]:
    subject = f"{lb.name} {target_group_label(arn)}"
    try:
        lb_pools = ctx.shared.get(
            ("octavia lb", sync.loadbalancer_id), partial(_pool_ids, ctx, sync)
        )
        foreign = [p for p in pools if p not in lb_pools]
        if foreign:
            return [
                fail(
                    TARGETS,
                    subject,
                    f"pool {foreign[0]} is no pool of Octavia load balancer "
                    f"{sync.loadbalancer_id} any more: run `pulumi up` to bind its pools again",
                )
            ]
        members = [ctx.shared.get(("members", p), partial(_members, ctx, p)) for p in pools]
    except octavia.OctaviaNotFound as gone:
        return [fail(TARGETS, subject, f"{gone}: the Octavia side this twin mirrors is gone")]
    targets = _targets(ctx, arn)
    if targets is None:
        return [fail(TARGETS, subject, f"target group {arn} is gone: run `pulumi up`")]
    return [judge_targets(subject, sync, arn, members, targets), judge_health(subject, targets)]


def _connection(ctx: Context) -> Any:
    return ctx.shared.get(
        "octavia", lambda: octavia.connect(ctx.outputs.openstack_cloud, ctx.os_password)
    )


def _pool_ids(ctx: Context, sync: Sync) -> frozenset[str]:
    return _octavia(ctx, "octavia GET loadbalancer", octavia.read_pool_ids, sync.loadbalancer_id)


def _members(ctx: Context, pool: str) -> list[Member]:
    return _octavia(ctx, "octavia GET members", octavia.read_members, pool)


def _octavia(ctx: Context, kind: str, read: Any, id_: str) -> Any:
    try:
        return ctx.meter.call(kind, read, _connection(ctx), id_)
    except octavia.OctaviaUnavailable as down:
        cause = down.__cause__ or down
        reason = (str(cause).strip().splitlines() or [type(cause).__name__])[0][:200]
        raise Unchecked(
            f"Octavia did not answer ({reason}): check the OpenStack endpoint and credentials "
            "(clouds.yaml entry, OS_*, the stack's openstack:password) and run again",
            ACCESS,
        ) from down


def _targets(ctx: Context, arn: str) -> list[Target] | None:
    """The group's targets with their health (one DescribeTargetHealth); None if it is gone."""
    try:
        answer = ctx.meter.call(
            "elbv2 DescribeTargetHealth",
            aws.elbv2(ctx).describe_target_health,
            TargetGroupArn=arn,
        )
    except aws.ERRORS as failure:
        if getattr(failure, "response", {}).get("Error", {}).get("Code") == "TargetGroupNotFound":
            return None
        raise aws.unchecked(failure, f"targets of {target_group_label(arn)}") from failure
    return [Target.from_description(d) for d in answer.get("TargetHealthDescriptions") or ()]
