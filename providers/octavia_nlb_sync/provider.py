"""The dynamic provider that keeps NLB target groups equal to Octavia pools on every `up`.

Each method reads everything first, plans in the pure planner, and only then writes; a failed or
suspicious read therefore stops the sync before the first write. `diff` runs on every preview,
so reading the live APIs there is what makes member drift visible before `up`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from ipaddress import IPv4Network, ip_address
from typing import Any

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)

from providers.inputs import changed_inputs, check_inputs, keep_secret, known
from providers.octavia_nlb_sync import elbv2, octavia
from providers.octavia_nlb_sync.planner import (
    GroupPlan,
    Member,
    desired_in_every_pool,
    members_after_up,
    plan_group,
    plan_release,
    target_group_label,
    target_key,
)

PROVIDER_VERSION = "1"
READ_CONCURRENCY = 8
"""Reads in flight per sync; the host runs up to 4 syncs at once (its gRPC thread pool)."""
DEFAULTS: dict[str, Any] = {
    "owns_target_groups": False,
    "max_deregister_fraction": 0.5,
    "os_cloud": None,
    "os_password": None,
    "aws_region": None,
    "config_key": None,
}
INPUTS = ("loadbalancer_id", "bindings", "vpc_cidrs", "provider_version", *DEFAULTS)
COMPARED = tuple(k for k in INPUTS if k not in ("os_password", "config_key"))
"""A rotated password is no change to sync: it only reaches the next connection. Nor is the
config key, which only names where the stack gives the load balancer, for error messages."""
UUID = re.compile(r"^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$", re.I)
TARGET_GROUP_ARN = re.compile(
    r"^arn:aws[a-z-]*:elasticloadbalancing:[a-z0-9-]+:\d{12}:targetgroup/[A-Za-z0-9-]{1,32}/[0-9a-f]+$"
)


@dataclass(frozen=True, slots=True)
class Binding:
    """A pool feeding a target group; `members` when the stack declares the pool's members."""

    pool_id: str
    target_group_arn: str
    members: tuple[Member, ...] | None = None


@dataclass(frozen=True, slots=True)
class SyncSpec:
    """The resource's inputs, typed."""

    loadbalancer_id: str
    bindings: tuple[Binding, ...]
    vpc_cidrs: tuple[IPv4Network, ...]
    owns_target_groups: bool
    max_deregister_fraction: float
    os_cloud: str | None
    os_password: str | None
    aws_region: str | None
    config_key: str | None = None
    """Where the stack names this load balancer (`hybrid-infra:loadBalancers[2].adopt.
    loadbalancerId`), so a wrong id is reported as the config error it is."""

    @property
    def where(self) -> str:
        return self.config_key or f"octavia lb {self.loadbalancer_id}"

    def declared(self) -> dict[str, tuple[Member, ...]]:
        """Pool → the members the stack declares for it (pools it declares nothing for: absent)."""
        return {b.pool_id: b.members for b in self.bindings if b.members is not None}

    def pools_by_group(self) -> dict[str, tuple[str, ...]]:
        """Target group → the pools that feed it (a TCP_UDP group is fed by two)."""
        groups: dict[str, tuple[str, ...]] = {}
        for binding in self.bindings:
            groups[binding.target_group_arn] = (
                *groups.get(binding.target_group_arn, ()),
                binding.pool_id,
            )
        return groups

    @classmethod
    def from_props(cls, props: Mapping[str, Any]) -> SyncSpec:
        values = {**DEFAULTS, **{k: v for k, v in props.items() if v is not None}}
        return cls(
            loadbalancer_id=str(values["loadbalancer_id"]),
            bindings=tuple(_binding(b) for b in values["bindings"]),
            vpc_cidrs=tuple(IPv4Network(c) for c in values["vpc_cidrs"]),
            owns_target_groups=bool(values["owns_target_groups"]),
            max_deregister_fraction=float(values["max_deregister_fraction"]),
            os_cloud=values["os_cloud"] or None,
            os_password=values["os_password"] or None,
            aws_region=values["aws_region"] or None,
            config_key=values["config_key"] or None,
        )


class OctaviaNlbSyncProvider(ResourceProvider):
    """Registers Octavia pool members as NLB targets; never removes what it did not add."""

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        """Inputs over defaults, each bad one a failure. A new sync's ids are also looked up
        here, since `diff` (which reads Octavia for an existing one) is not called for it: an id
        Octavia does not know fails the preview, while Octavia down only warns."""
        result = check_inputs(news, DEFAULTS, validate)
        if not olds and not result.failures and known(result.inputs):
            result.failures.extend(_unknown_ids(SyncSpec.from_props(result.inputs)))
        return result

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = changed_inputs(olds, news, COMPARED, DEFAULTS)
        if not known(news):
            return DiffResult(changes=True, replaces=[], delete_before_replace=False)
        spec = SyncSpec.from_props(news)
        try:
            plans, _ = _plan(spec, _owned(olds), _withdrawn(olds, spec))
        except octavia.OctaviaNotFound as error:
            # Octavia answered: the id is wrong. Running again will not help, so the preview
            # fails here, naming the key, instead of passing with an outage warning.
            raise WrongOctaviaId(spec, error) from error
        except octavia.OctaviaUnavailable as error:
            # Octavia down must not block the `up` an operator runs because it is down (a DNS
            # drain, say): the sync stays as it is unless its own inputs changed, and `update`
            # then fails on the same read, before any write.
            pulumi.log.warn(
                f"octavia lb {spec.loadbalancer_id}: member drift unknown, Octavia did not "
                f"answer ({error}). The sync is left as it is; the rest of the stack goes on. "
                "Run `pulumi up` again once Octavia answers."
            )
            return DiffResult(changes=bool(changed), replaces=[], delete_before_replace=False)
        for plan in plans:
            pulumi.log.info(f"{plan.summary()} targets to sync (octavia lb {spec.loadbalancer_id})")
        drift = any(not p.is_noop for p in plans)
        return DiffResult(changes=bool(changed) or drift, replaces=[], delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> CreateResult:
        spec = SyncSpec.from_props(props)
        outs = _sync(spec, props, owned={})
        return CreateResult(f"octavia-nlb-sync-{spec.loadbalancer_id}", outs)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        spec = SyncSpec.from_props(news)
        return UpdateResult(_sync(spec, news, owned=_owned(olds), withdrawn=_withdrawn(olds, spec)))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """Refresh: the owned targets still registered, and the sync that is due.

        `pending` is what makes member changes in Octavia count as drift: a refresh (and so a
        drift-detection run) sees it change exactly when an `up` would register or deregister.
        An unreadable Octavia only warns here; refresh must keep working while Octavia is down.
        """
        spec = SyncSpec.from_props(props)
        client = elbv2.client(spec.aws_region)
        targets = {}
        for arn, owned in _owned(props).items():
            live = _live_or_empty(client, arn)
            targets[arn] = sorted(owned & live)
        pending = props.get("pending") or {}
        try:
            plans, _ = _plan(spec, _owned(props), guarded=False)
            pending = _pending(plans)
        except octavia.OctaviaNotFound as error:
            # A refresh is how state is repaired, so it goes on; the preview fails on this.
            pulumi.log.warn(f"refresh: {WrongOctaviaId(spec, error)}; pending sync unknown")
        except octavia.OctaviaUnavailable as error:
            pulumi.log.warn(f"refresh could not read Octavia; pending sync unknown: {error}")
        return ReadResult(id_, {**props, "targets": targets, "pending": pending})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        """Deregister the targets this resource registered; leave everything else."""
        spec = SyncSpec.from_props(props)
        client = elbv2.client(spec.aws_region)
        for arn, owned in _owned(props).items():
            plan = plan_release(arn, _live_or_empty(client, arn), owned)
            elbv2.deregister(client, arn, plan.deregister, spec.vpc_cidrs)
            pulumi.log.info(f"{plan.summary()} targets released")


class WrongOctaviaId(Exception):
    """Octavia answered that the load balancer or a pool the sync names is not there (or not
    the LB's): a mistake in the stack, not an outage, so it fails instead of warning."""

    def __init__(self, spec: SyncSpec, error: octavia.OctaviaNotFound) -> None:
        super().__init__(
            f"{spec.where}: {error}. Octavia answered, so this is not an outage: fix the id "
            "in the stack configuration (or remove the entry); the NLB was not touched."
        )
        self.kind = error.kind
        self.id = error.id


class OctaviaNlbSync(pulumi.dynamic.Resource, module="hybrid-infra", name="OctaviaNlbSync"):
    """Keeps the NLB target groups of one Octavia LB equal to its pools' serving members."""

    loadbalancer_id: pulumi.Output[str]
    bindings: pulumi.Output[list[dict[str, Any]]]
    targets: pulumi.Output[dict[str, list[str]]]
    last_sync: pulumi.Output[dict[str, int]]
    pending: pulumi.Output[dict[str, str]]

    def __init__(
        self,
        resource_name: str,
        *,
        loadbalancer_id: pulumi.Input[str],
        bindings: pulumi.Input[list[pulumi.Input[dict]]],
        vpc_cidrs: pulumi.Input[list[str]],
        owns_target_groups: bool = False,
        max_deregister_fraction: float = 0.5,
        os_cloud: str | None = None,
        os_password: pulumi.Input[str] | None = None,
        aws_region: str | None = None,
        config_key: str | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "loadbalancer_id": loadbalancer_id,
            "bindings": bindings,
            "vpc_cidrs": vpc_cidrs,
            "owns_target_groups": owns_target_groups,
            "max_deregister_fraction": max_deregister_fraction,
            "os_cloud": os_cloud,
            "os_password": os_password,
            "aws_region": aws_region,
            "config_key": config_key,
            "provider_version": PROVIDER_VERSION,
            "targets": None,
            "last_sync": None,
            "pending": None,
        }
        super().__init__(
            OctaviaNlbSyncProvider(), resource_name, props, keep_secret(opts, "os_password")
        )


def validate(inputs: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Input problems as (property, reason); values unknown at preview are not judged."""
    failures: list[tuple[str, str]] = []

    def bad(prop: str, reason: str) -> None:
        failures.append((prop, reason))

    lb_id = inputs.get("loadbalancer_id")
    if lb_id is None:
        bad("loadbalancer_id", "required: the Octavia load balancer UUID")
    elif known(lb_id) and not (isinstance(lb_id, str) and UUID.match(lb_id)):
        bad("loadbalancer_id", f"must be an Octavia load balancer UUID, got {lb_id!r}")

    bindings = inputs.get("bindings")
    if not known(bindings):
        pass
    elif not isinstance(bindings, list) or not bindings:
        bad("bindings", "must be a non-empty list of {pool_id, target_group_arn}")
    else:
        failures.extend(_validate_bindings(bindings))

    cidrs = inputs.get("vpc_cidrs")
    if known(cidrs):
        if not isinstance(cidrs, list) or not cidrs:
            bad("vpc_cidrs", "must be a non-empty list of the VPC's CIDRs")
        else:
            for i, cidr in enumerate(cidrs):
                if known(cidr) and not _is_cidr(cidr):
                    bad(f"vpc_cidrs[{i}]", f"not an IPv4 CIDR: {cidr!r}")

    fraction = inputs.get("max_deregister_fraction")
    if known(fraction) and not (
        isinstance(fraction, int | float) and not isinstance(fraction, bool) and 0 <= fraction <= 1
    ):
        bad("max_deregister_fraction", f"must be a number from 0 to 1, got {fraction!r}")
    if known(inputs.get("owns_target_groups")) and not isinstance(
        inputs.get("owns_target_groups"), bool
    ):
        bad("owns_target_groups", "must be true or false")
    return failures


def _validate_bindings(bindings: list[Any]) -> list[tuple[str, str]]:
    failures = []
    seen: set[tuple[Any, Any]] = set()
    for i, binding in enumerate(bindings):
        where = f"bindings[{i}]"
        if not isinstance(binding, dict):
            failures.append((where, "must be {pool_id, target_group_arn}"))
            continue
        pool_id, arn = binding.get("pool_id"), binding.get("target_group_arn")
        if known(pool_id) and not (isinstance(pool_id, str) and UUID.match(pool_id)):
            failures.append((f"{where}.pool_id", f"must be an Octavia pool UUID, got {pool_id!r}"))
        if known(arn) and not (isinstance(arn, str) and TARGET_GROUP_ARN.match(arn)):
            failures.append((f"{where}.target_group_arn", f"not a target group ARN: {arn!r}"))
        if known(pool_id) and known(arn) and (pool_id, arn) in seen:
            failures.append((where, f"pool {pool_id} is bound to {arn} twice"))
        seen.add((pool_id, arn))
        if "members" in binding and known(binding["members"]):
            failures.extend(_validate_members(f"{where}.members", binding["members"]))
    return failures


def _validate_members(where: str, members: Any) -> list[tuple[str, str]]:
    """Declared members: a list of {address, port, weight?, admin_state_up?}, each once."""
    if not isinstance(members, list):
        return [(where, "must be a list of {address, port, weight}")]
    failures, seen = [], set()
    for i, m in enumerate(members):
        try:
            key = target_key(str(ip_address(m["address"])), int(m["port"]))
            if not 1 <= int(m["port"]) <= 65535 or not 0 <= int(m.get("weight", 1)) <= 256:
                raise ValueError
        except (TypeError, KeyError, ValueError):
            shape = "{address: IP, port: 1..65535, weight: 0..256}"
            failures.append((f"{where}[{i}]", f"must be {shape}, got {m!r}"))
            continue
        if key in seen:
            failures.append((f"{where}[{i}]", f"{key} is declared twice"))
        seen.add(key)
    return failures


def _plan(
    spec: SyncSpec,
    owned: Mapping[str, frozenset[str]],
    withdrawn: Mapping[str, frozenset[str]] | None = None,
    guarded: bool = True,
) -> tuple[list[GroupPlan], Any]:
    """Read Octavia and the NLB, then plan every group; raises before any write on a bad read.

    Returns the plans and the ELBv2 client to write with. Credentials refused on a cached
    client or connection are retried once on new ones (a read changes nothing, so it is safe).
    """
    try:
        return _read_and_plan(spec, owned, withdrawn or {}, guarded)
    except Exception as error:
        if not (octavia.is_auth_error(error) or elbv2.is_auth_error(error)):
            raise
        pulumi.log.warn(f"octavia lb {spec.loadbalancer_id}: credentials refused; reconnecting")
        octavia.forget_connections()
        elbv2.forget_clients()
        return _read_and_plan(spec, owned, withdrawn or {}, guarded)


def _read_and_plan(
    spec: SyncSpec,
    owned: Mapping[str, frozenset[str]],
    withdrawn: Mapping[str, frozenset[str]],
    guarded: bool,
) -> tuple[list[GroupPlan], Any]:
    """The reads are independent, so they run at once (at most READ_CONCURRENCY in flight):
    the LB, each pool's members, each target group's targets. Planning waits for all of them
    and goes in a fixed order, so the plan is exactly what sequential reads would give."""
    conn = octavia.connect(spec.os_cloud, spec.os_password)
    client = elbv2.client(spec.aws_region)
    groups = spec.pools_by_group()
    pools = sorted({pool for pools in groups.values() for pool in pools})
    released = sorted(arn for arn in owned if arn not in groups)
    with ThreadPoolExecutor(max_workers=READ_CONCURRENCY) as reads:
        lb_pools = reads.submit(octavia.read_pool_ids, conn, spec.loadbalancer_id)
        members = {pool: reads.submit(octavia.read_members, conn, pool) for pool in pools}
        targets = {arn: reads.submit(elbv2.list_targets, client, arn) for arn in groups}
        leftovers = {arn: reads.submit(_live_or_empty, client, arn) for arn in released}
        _refuse_foreign_pools(spec, pools, lb_pools.result())
        declared = spec.declared()
        plans = []
        for arn, bound_pools in groups.items():
            per_pool = []
            for pool in bound_pools:
                live = members[pool].result()
                if pool in declared:
                    live = members_after_up(live, declared[pool], withdrawn.get(pool, frozenset()))
                per_pool.append(live)
            plans.append(
                plan_group(
                    arn,
                    desired_in_every_pool(per_pool),
                    targets[arn].result(),
                    owned.get(arn, frozenset()),
                    owns_target_group=spec.owns_target_groups,
                    max_deregister_fraction=spec.max_deregister_fraction,
                    guarded=guarded,
                )
            )
        for arn in released:
            plans.append(plan_release(arn, leftovers[arn].result(), owned[arn]))
    return plans, client


def _refuse_foreign_pools(spec: SyncSpec, pools: Iterable[str], lb_pools: frozenset[str]) -> None:
    """A pool of another load balancer is a wrong id too: syncing it would mirror that LB."""
    foreign = [pool for pool in pools if pool not in lb_pools]
    if foreign:
        raise octavia.OctaviaNotFound(
            "pool",
            foreign[0],
            f"pool {foreign[0]} is not a pool of load balancer {spec.loadbalancer_id} "
            f"(its pools: {', '.join(sorted(lb_pools)) or 'none'})",
        )


def _unknown_ids(spec: SyncSpec) -> list[CheckFailure]:
    """The ids Octavia does not know, as check failures; one read (the LB lists its pools)."""
    try:
        conn = octavia.connect(spec.os_cloud, spec.os_password)
        lb_pools = octavia.read_pool_ids(conn, spec.loadbalancer_id)
        _refuse_foreign_pools(spec, [b.pool_id for b in spec.bindings], lb_pools)
    except octavia.OctaviaNotFound as error:
        prop = "loadbalancer_id"
        if error.kind == "pool":
            prop = next(
                f"bindings[{i}].pool_id"
                for i, b in enumerate(spec.bindings)
                if b.pool_id == error.id
            )
        return [CheckFailure(prop, str(WrongOctaviaId(spec, error)))]
    except octavia.OctaviaUnavailable as error:
        pulumi.log.warn(
            f"octavia lb {spec.loadbalancer_id}: ids not verified, Octavia did not answer "
            f"({error}); the create reads them again before any write."
        )
    return []


def _sync(
    spec: SyncSpec,
    props: Mapping[str, Any],
    owned: Mapping[str, frozenset[str]],
    withdrawn: Mapping[str, frozenset[str]] | None = None,
) -> dict:
    try:
        plans, client = _plan(spec, owned, withdrawn)
    except octavia.OctaviaNotFound as error:
        raise WrongOctaviaId(spec, error) from error
    # Deregister everywhere before registering anywhere: a drained member stops receiving
    # new flows first, and the deregistration delay starts as early as possible.
    deregistered = sum(
        elbv2.deregister(client, p.target_group_arn, p.deregister, spec.vpc_cidrs) for p in plans
    )
    registered = sum(
        elbv2.register(client, p.target_group_arn, p.register, spec.vpc_cidrs) for p in plans
    )
    for plan in plans:
        pulumi.log.info(f"{plan.summary()} targets synced")
    bound = spec.pools_by_group()
    return {
        **{k: props.get(k, DEFAULTS.get(k)) for k in INPUTS},
        "targets": {
            p.target_group_arn: list(p.owned_after) for p in plans if p.target_group_arn in bound
        },
        "last_sync": {"registered": registered, "deregistered": deregistered},
        "pending": {},
    }


def _pending(plans: list[GroupPlan]) -> dict[str, str]:
    """`{target_group_arn: "+2 -1"}` for every group a sync would change."""
    return {
        p.target_group_arn: f"+{len(p.register)} -{len(p.deregister)}"
        for p in plans
        if not p.is_noop
    }


def _withdrawn(olds: Mapping[str, Any], spec: SyncSpec) -> dict[str, frozenset[str]]:
    """Pool → members the stack declared before and no longer does (deleted after the sync)."""
    old_bindings = olds.get("bindings")
    if not old_bindings or not known(old_bindings):
        return {}
    now = spec.declared()
    return {
        b.pool_id: frozenset(m.target for m in b.members)
        - {m.target for m in now.get(b.pool_id, ())}
        for b in map(_binding, old_bindings)
        if b.members is not None
    }


def _binding(raw: Mapping[str, Any]) -> Binding:
    members = raw.get("members")
    return Binding(
        pool_id=str(raw["pool_id"]),
        target_group_arn=str(raw["target_group_arn"]),
        members=None
        if members is None
        else tuple(
            Member(
                address=str(m["address"]),
                protocol_port=int(m["port"]),
                weight=int(m.get("weight", 1)),
                admin_state_up=bool(m.get("admin_state_up", True)),
            )
            for m in members
        ),
    )


def _owned(props: Mapping[str, Any]) -> dict[str, frozenset[str]]:
    return {arn: frozenset(keys) for arn, keys in (props.get("targets") or {}).items()}


def _live_or_empty(client: Any, arn: str) -> frozenset[str]:
    try:
        return elbv2.list_targets(client, arn)
    except elbv2.ElbUnavailable as error:
        if elbv2.is_target_group_not_found(error.__cause__ or error):
            pulumi.log.info(f"{target_group_label(arn)}: target group is gone; nothing to release")
            return frozenset()
        raise


def _is_cidr(value: Any) -> bool:
    try:
        IPv4Network(value)
    except (ValueError, TypeError):
        return False
    return True
