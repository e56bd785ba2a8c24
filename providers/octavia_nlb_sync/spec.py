"""What one sync is asked to do: its inputs typed (`SyncSpec`), their validation, and what its
state says it owns; no I/O here.

Values unknown at preview are never judged: `validate` passes them, and the engine checks again
once they are known.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Network, ip_address
from typing import Any

from providers.inputs import known
from providers.octavia_nlb_sync.octavia import OctaviaNotFound
from providers.octavia_nlb_sync.planner import Member, target_key

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

    def property_of(self, wrong: OctaviaNotFound) -> str:
        """The input that names what Octavia refused: `loadbalancer_id` or a binding's pool."""
        if wrong.kind != "pool":
            return "loadbalancer_id"
        bound = (i for i, b in enumerate(self.bindings) if b.pool_id == wrong.id)
        return f"bindings[{next(bound)}].pool_id"

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


class ForeignPool(OctaviaNotFound):
    """A bound pool that Octavia has, but under another load balancer: a wrong id as much as an
    unknown one, since syncing it would mirror that other LB's members."""

    def __init__(self, spec: SyncSpec, pool_id: str, lb_pools: frozenset[str]) -> None:
        super().__init__(
            "pool",
            pool_id,
            f"pool {pool_id} is not a pool of load balancer {spec.loadbalancer_id} "
            f"(its pools: {', '.join(sorted(lb_pools)) or 'none'})",
        )


def refuse_foreign_pools(spec: SyncSpec, pools: Iterable[str], lb_pools: frozenset[str]) -> None:
    """Raise `ForeignPool` for the first of `pools` that the load balancer does not list."""
    foreign = [pool for pool in pools if pool not in lb_pools]
    if foreign:
        raise ForeignPool(spec, foreign[0], lb_pools)


def owned_targets(props: Mapping[str, Any]) -> dict[str, frozenset[str]]:
    """Target group → the targets this resource registered there, from its state."""
    return {arn: frozenset(keys) for arn, keys in (props.get("targets") or {}).items()}


def withdrawn_members(olds: Mapping[str, Any], spec: SyncSpec) -> dict[str, frozenset[str]]:
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


def _is_cidr(value: Any) -> bool:
    try:
        IPv4Network(value)
    except (ValueError, TypeError):
        return False
    return True
