"""CrossGuard policies for hybrid-infra, as plain functions the pack and the tests both call.

Each rule is mandatory or advisory by what it protects:

- mandatory: the failover path (NLB twin, sync, health checks, weights), what faces the world
  (management ports and the Kubernetes API, however the rules that open them are split) and
  prod's traffic-carrying resources (protect);
- advisory: bookkeeping (cost tags), which must never block an emergency fix.

The pack runs with the pack directory as its only project code (the CLI starts it there), so
this module depends on `pulumi_policy`, the standard library and the pack's own
`management-ports.json`, never on `components/` or `model/`.
Property names are the engine's wire names (camelCase), as the policies receive them.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Set
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, ip_network, summarize_address_range
from pathlib import Path
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

PACK_NAME = "hybrid-infra"

HYBRID_LB = "hybrid-infra:lb:HybridLoadBalancer"
NLB = "aws:lb/loadBalancer:LoadBalancer"
TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"
SYNC = "pulumi-python:dynamic/hybrid-infra:OctaviaNlbSync"
OCTAVIA_LB = "openstack:loadbalancer/loadBalancer:LoadBalancer"
OCTAVIA_POOL = "openstack:loadbalancer/pool:Pool"
RECORD = "aws:route53/record:Record"
AWS_SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
AWS_SECURITY_GROUP_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
AWS_INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
OPENSTACK_RULE = "openstack:networking/secGroupRule:SecGroupRule"

# Management ports (remote administration, data stores, the Kubernetes and OpenStack control
# planes), with the source of each group: never open to the world. The program reads the same
# file to keep them off every NLB twin.
MANAGEMENT_PORTS: Mapping[int, str] = {
    int(port): name
    for group in json.loads((Path(__file__).parent / "management-ports.json").read_text())["groups"]
    for port, name in group["ports"].items()
}

# Resources that carry traffic: deleting one takes a service down. Prods are cattle by design
# and node pools are replaced per version, so neither is listed.
TRAFFIC_TYPES: frozenset[str] = frozenset(
    {
        NLB,
        OCTAVIA_LB,
        "openstack:containerinfra/cluster:Cluster",
        "aws:eks/cluster:Cluster",
        "gcp:container/cluster:Cluster",
    }
)
PROTECTED_STACKS_DEFAULT: tuple[str, ...] = ("prod",)

REQUIRED_TAGS: tuple[str, ...] = ("owner", "cost-center", "environment")
# AWS types without a `tags` argument. Every other aws:* type is treated as taggable, so a new
# type is checked by default; add it here if AWS cannot tag it.
UNTAGGABLE_AWS_TYPES: frozenset[str] = frozenset(
    {
        RECORD,
        AWS_SECURITY_GROUP_RULE,
        "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
        "aws:iam/policyAttachment:PolicyAttachment",
        "aws:lb/targetGroupAttachment:TargetGroupAttachment",
        "aws:lb/listenerCertificate:ListenerCertificate",
        "aws:route53/zoneAssociation:ZoneAssociation",
        "aws:ec2/securityGroupAssociation:SecurityGroupAssociation",
        "aws:eks/accessPolicyAssociation:AccessPolicyAssociation",
    }
)


# --- reading properties that may be unknown during preview ----------------------------------


def _get(props: Mapping[str, Any], key: str, default: Any = None) -> Any:
    """A property, or `default`; an unknown (preview) value raises `UnknownValueError`."""
    try:
        return props[key]
    except KeyError:
        return default


def _is_set(props: Mapping[str, Any], key: str) -> bool:
    """True if the property has a value; an unknown value will have one after the update."""
    try:
        value = props[key]
    except KeyError:
        return False
    except UnknownValueError:
        return True
    return value not in (None, "")


def _stack_of(urn: str) -> str:
    """`urn:pulumi:<stack>::<project>::<type>::<name>` → `<stack>`."""
    return urn.split("::", 1)[0].rsplit(":", 1)[-1]


# --- every Octavia LB has its NLB twin and a sync over all its pools -------------------------


def _descendants(
    component: PolicyResource, resources: Sequence[PolicyResource]
) -> list[PolicyResource]:
    """Resources whose parent chain reaches `component`."""
    found = []
    for resource in resources:
        parent = resource.parent
        while parent is not None:
            if parent.urn == component.urn:
                found.append(resource)
                break
            parent = parent.parent
    return found


def _synced_urns(sync: PolicyResource) -> set[str]:
    """What the sync reads from: its bindings' pools and target groups (by dependency, which
    stays known during preview when the pool IDs do not)."""
    urns = {r.urn for r in sync.dependencies}
    for deps in sync.property_dependencies.values():
        urns.update(r.urn for r in deps)
    return urns


def _is_network_lb(resource: PolicyResource) -> bool:
    try:
        return _get(resource.props, "loadBalancerType", "application") == "network"
    except UnknownValueError:
        return True


def validate_hybrid_lb_twins(args: StackValidationArgs, report: ReportViolation) -> None:
    """Without its NLB twin and sync, an Octavia LB has no failover when Octavia dies."""
    resources = list(args.resources)
    for component in (r for r in resources if r.resource_type == HYBRID_LB):
        below = _descendants(component, resources)
        nlbs = [r for r in below if r.resource_type == NLB and _is_network_lb(r)]
        syncs = [r for r in below if r.resource_type == SYNC]
        name = component.name
        if len(nlbs) != 1:
            report(f"hybrid LB {name!r} has {len(nlbs)} NLB twins; it needs exactly 1", None)
        if len(syncs) != 1:
            report(f"hybrid LB {name!r} has {len(syncs)} member syncs; it needs exactly 1", None)
            continue
        synced = _synced_urns(syncs[0])
        for kind, type_ in (("Octavia pool", OCTAVIA_POOL), ("NLB target group", TARGET_GROUP)):
            for resource in (r for r in below if r.resource_type == type_):
                if resource.urn not in synced:
                    report(
                        f"hybrid LB {name!r}: {kind} {resource.name!r} is not bound in the sync "
                        f"{syncs[0].name!r}, so its member changes never reach the NLB",
                        resource.urn,
                    )


# --- health checks ---------------------------------------------------------------------------


def validate_target_group_health_check(
    args: ResourceValidationArgs, report: ReportViolation
) -> None:
    """The NLB is the failover path; it must stop sending to members Octavia marks down."""
    if args.resource_type != TARGET_GROUP:
        return
    try:
        check = _get(args.props, "healthCheck")
        if not isinstance(check, Mapping):
            report("target group has no healthCheck; map the Octavia pool's monitor onto it", None)
        elif _get(check, "enabled", True) is False:
            report("target group health check is disabled", None)
    except UnknownValueError:
        return


def _weight(record: Mapping[str, Any]) -> float | None:
    policies = _get(record, "weightedRoutingPolicies") or []
    if not policies:
        return None
    return float(_get(policies[0], "weight", 0))


def validate_weighted_record_health_check(
    args: ResourceValidationArgs, report: ReportViolation
) -> None:
    """A weighted record without a health check keeps its share when its side is down."""
    if args.resource_type != RECORD:
        return
    try:
        if not _get(args.props, "weightedRoutingPolicies"):
            return
    except UnknownValueError:
        pass
    if not _is_set(args.props, "healthCheckId"):
        report("weighted record has no healthCheckId, so Route53 cannot fail over from it", None)


def validate_weights_not_all_zero(args: StackValidationArgs, report: ReportViolation) -> None:
    """All-zero weights make Route53 split evenly: half the traffic lands on the warm standby."""
    groups: dict[tuple[Any, ...], list[tuple[PolicyResource, float]]] = defaultdict(list)
    for record in (r for r in args.resources if r.resource_type == RECORD):
        try:
            weight = _weight(record.props)
            if weight is None:
                continue
            key = (
                _get(record.props, "zoneId"),
                _get(record.props, "name"),
                _get(record.props, "type"),
            )
        except UnknownValueError:
            continue
        groups[key].append((record, weight))
    for (_zone, name, type_), members in groups.items():
        if all(weight == 0 for _, weight in members):
            ids = ", ".join(sorted(r.name for r, _ in members))
            report(
                f"every weighted {type_} record of {name} has weight 0 ({ids}); "
                "use dns.drain to take one side out, never both",
                members[0][0].urn,
            )


# --- the world: what a set of rules admits, together -----------------------------------------
#
# One rule that admits 0.0.0.0/1 and another that admits 128.0.0.0/1 admit everyone; so does a
# rule on a prefix list whose entries are. So sources are read as address sets: the rules that
# open a port on one filter (a security group, a network ACL, a VPC network's firewall, a
# firewall policy) are added up, in the filter's own order where it has one (a network ACL's
# deny before a later allow), and the sum is "the world" when it holds more public addresses
# than one organisation is assigned: more than a /16 of IPv4 (65,536) or a /32 of IPv6 (2^96,
# a registry's allocation to one network operator). Public means unicast on the internet:
# outside the IANA special-purpose blocks that are not globally reachable (RFC 6890), multicast,
# and for IPv6 outside global unicast 2000::/3 (what Python's `ipaddress` calls not global,
# multicast or reserved).

WORLD_IPV4 = 2**16
WORLD_IPV6 = 2**96
NOT_PUBLIC: tuple[str, ...] = (
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/3",  # multicast and reserved, to 255.255.255.255
    # IPv6 on the internet is global unicast, 2000::/3, less the documentation block.
    "::/3",
    "2001:db8::/32",
    "4000::/2",
    "8000::/1",
)
EVERYWHERE: tuple[str, ...] = ("0.0.0.0/0", "::/0")

Span = tuple[int, int, int]
"""IP version, then the first and last address of a block, as integers."""


def _span(cidr: str) -> Span | None:
    try:
        network = ip_network(cidr.strip(), strict=False)
    except ValueError:
        return None
    return network.version, int(network.network_address), int(network.broadcast_address)


class Addresses:
    """A set of IPv4 and IPv6 addresses, as merged spans."""

    def __init__(self, spans: Iterable[Span] = ()) -> None:
        merged: list[Span] = []
        for version, first, last in sorted(spans):
            if merged and merged[-1][0] == version and first <= merged[-1][2] + 1:
                merged[-1] = (version, merged[-1][1], max(merged[-1][2], last))
            else:
                merged.append((version, first, last))
        self.spans = tuple(merged)

    @classmethod
    def of(cls, cidrs: Iterable[Any]) -> Addresses:
        """The addresses of `cidrs`; anything that is not a CIDR adds none."""
        return cls(s for s in (_span(c) for c in cidrs if isinstance(c, str)) if s is not None)

    def __or__(self, other: Addresses) -> Addresses:
        return Addresses((*self.spans, *other.spans))

    def __sub__(self, other: Addresses) -> Addresses:
        kept: list[Span] = []
        for version, first, last in self.spans:
            pieces = [(first, last)]
            for cut_version, cut_first, cut_last in other.spans:
                if cut_version != version:
                    continue
                pieces = [
                    (low, high)
                    for start, end in pieces
                    for low, high in (
                        (start, min(end, cut_first - 1)),
                        (max(start, cut_last + 1), end),
                    )
                    if low <= high
                ]
            kept += [(version, low, high) for low, high in pieces]
        return Addresses(kept)

    def __bool__(self) -> bool:
        return bool(self.spans)

    def public(self) -> dict[int, int]:
        """How many public addresses the set holds, per IP version."""
        counts = {4: 0, 6: 0}
        for version, first, last in (self - _NOT_PUBLIC).spans:
            counts[version] += last - first + 1
        return counts

    def is_world(self) -> bool:
        public = self.public()
        return public[4] > WORLD_IPV4 or public[6] > WORLD_IPV6

    def describe(self) -> str:
        """`0.0.0.0/0 (3,702,258,432 public IPv4 addresses)`."""
        blocks = [
            str(block)
            for version, first, last in self.spans
            for block in summarize_address_range(
                *(
                    (IPv4Address(first), IPv4Address(last))
                    if version == 4
                    else (IPv6Address(first), IPv6Address(last))
                )
            )
        ]
        shown = ", ".join(blocks[:4]) + (f" and {len(blocks) - 4} more" if len(blocks) > 4 else "")
        counts = [f"{n:,} public IPv{v} addresses" for v, n in self.public().items() if n]
        return f"{shown} ({', '.join(counts) or 'no public address'})"


_NOT_PUBLIC = Addresses.of(NOT_PUBLIC)


# --- every resource that opens a port, read as grants ----------------------------------------

AWS_DEFAULT_SECURITY_GROUP = "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"
AWS_NETWORK_ACL = "aws:ec2/networkAcl:NetworkAcl"
AWS_DEFAULT_NETWORK_ACL = "aws:ec2/defaultNetworkAcl:DefaultNetworkAcl"
AWS_NETWORK_ACL_RULE = "aws:ec2/networkAclRule:NetworkAclRule"
AWS_PREFIX_LIST = "aws:ec2/managedPrefixList:ManagedPrefixList"
AWS_PREFIX_LIST_ENTRY = "aws:ec2/managedPrefixListEntry:ManagedPrefixListEntry"
EKS_CLUSTER = "aws:eks/cluster:Cluster"
OPENSTACK_SECURITY_GROUP = "openstack:networking/secGroup:SecGroup"
OPENSTACK_ADDRESS_GROUP = "openstack:networking/addressGroupV2:AddressGroupV2"
OPENSTACK_COMPUTE_SECURITY_GROUP = "openstack:compute/secGroup:SecGroup"
"""Nova security groups, with inline rules (pulumi-openstack up to v4)."""
OPENSTACK_FIREWALL_RULE = "openstack:firewall/ruleV2:RuleV2"
GCP_NETWORK = "gcp:compute/network:Network"
GCP_FIREWALL = "gcp:compute/firewall:Firewall"
GCP_POLICY_RULES: frozenset[str] = frozenset(
    {
        "gcp:compute/firewallPolicyRule:FirewallPolicyRule",
        "gcp:compute/networkFirewallPolicyRule:NetworkFirewallPolicyRule",
        "gcp:compute/regionNetworkFirewallPolicyRule:RegionNetworkFirewallPolicyRule",
    }
)
GKE_CLUSTER = "gcp:container/cluster:Cluster"

FILTER_TYPES: frozenset[str] = frozenset(
    {
        AWS_SECURITY_GROUP,
        AWS_DEFAULT_SECURITY_GROUP,
        AWS_NETWORK_ACL,
        AWS_DEFAULT_NETWORK_ACL,
        EKS_CLUSTER,  # the rules on its cluster security group depend on the cluster
        OPENSTACK_SECURITY_GROUP,
        GCP_NETWORK,
    }
)
"""What a standalone rule can belong to; its rules are added up with the filter's own."""

PROTOCOLS = {"-1": "all", "any": "all", "6": "tcp", "17": "udp"}
TRANSPORTS = ("tcp", "udp")


@dataclass(frozen=True)
class Grant:
    """Whom one rule lets in (or, for `allow=False`, keeps out) on some ports of a filter."""

    resource: PolicyResource
    filter: str
    """The URN (or cloud id) of the security group, ACL, network or policy the rule is part of."""
    protocol: str
    ports: tuple[int, int]
    sources: Addresses
    unseen: tuple[str, ...] = ()
    """Sources the pack cannot see into (an undeclared prefix list): counted as the world."""
    allow: bool = True
    order: float = 0
    """Where the filter's rules are ordered (ACL rule number, firewall priority), its place."""

    def covers(self, port: int, transport: str) -> bool:
        return self.protocol in ("all", transport) and self.ports[0] <= port <= self.ports[1]

    def admits(self) -> Addresses:
        return Addresses.of(EVERYWHERE) if self.unseen else self.sources


def _protocol(value: Any) -> str:
    text = "all" if value in (None, "") else str(value).lower()
    return PROTOCOLS.get(text, text)


def _ports(protocol: str, low: Any, high: Any) -> tuple[int, int]:
    """A rule's port range; none, or 0-0, or every protocol: every port."""
    first = 0 if low in (None, "") else int(low)
    last = 65535 if high in (None, "") else int(high)
    if protocol == "all" or (first, last) == (0, 0) or first < 0:
        return 0, 65535
    return first, last


def _port_strings(ports: Any) -> list[tuple[int, int]]:
    """GCP's `["22", "1000-2000"]` and FWaaS's `"20:30"`; none: every port."""
    ranges = []
    for text in [ports] if isinstance(ports, str) else ports or []:
        first, _, last = str(text).replace(":", "-").partition("-")
        ranges.append((int(first), int(last or first)))
    return ranges or [(0, 65535)]


class Stack:
    """Every resource of the stack, with what rules need from others (prefix lists, groups)."""

    def __init__(self, resources: Sequence[PolicyResource]) -> None:
        self.resources = resources
        self.members: dict[str, list[Any]] = defaultdict(list)
        """Prefix list or address group URN → its CIDRs (those known in this preview)."""
        for resource in resources:
            try:
                self.members.update(self._members(resource))
            except UnknownValueError:
                continue

    def _members(self, resource: PolicyResource) -> dict[str, list[Any]]:
        props, type_ = resource.props, resource.resource_type
        if type_ == AWS_PREFIX_LIST:
            entries = [_get(e, "cidr") for e in _get(props, "entries") or []]
            return {resource.urn: [*self.members[resource.urn], *entries]}
        if type_ == AWS_PREFIX_LIST_ENTRY:
            lists = self.depended(resource, "prefixListId", {AWS_PREFIX_LIST})
            return {p.urn: [*self.members[p.urn], _get(props, "cidr")] for p in lists}
        if type_ == OPENSTACK_ADDRESS_GROUP:
            return {resource.urn: list(_get(props, "addresses") or [])}
        return {}

    @staticmethod
    def depended(resource: PolicyResource, key: str, types: Set[str]) -> list[PolicyResource]:
        """What `resource`'s property `key` comes from, among `types` (by the property's own
        dependencies where the engine gives them, else by the resource's)."""
        found = [d for d in resource.property_dependencies.get(key, []) if d.resource_type in types]
        return found or [d for d in resource.dependencies if d.resource_type in types]

    def filter_of(self, resource: PolicyResource, key: str) -> str:
        """The filter a standalone rule belongs to: the resource its `key` property comes from,
        else the id it names."""
        found = self.depended(resource, key, FILTER_TYPES)
        if len(found) == 1:
            return found[0].urn
        value = _get(resource.props, key)
        return value if isinstance(value, str) and value else resource.urn

    def groups(
        self, resource: PolicyResource, key: str, named: Sequence[Any], types: Set[str], what: str
    ) -> tuple[list[Any], tuple[str, ...]]:
        """The CIDRs of the prefix lists (or address groups) `named` by a rule, and those of
        them that are not declared in this stack, whose entries the pack cannot see."""
        declared = self.depended(resource, key, types)
        cidrs = [c for d in declared for c in self.members.get(d.urn, [])]
        missing = len([n for n in named if n]) > len(declared)
        return cidrs, tuple(f"{what} {n}" for n in named if n) if missing else ()

    def grants(self) -> Iterator[Grant]:
        for resource in self.resources:
            read = READERS.get(resource.resource_type)
            if read is None:
                continue
            try:
                yield from read(self, resource)
            except UnknownValueError:
                continue  # known at `up`, when the pack runs again with the values


def _aws_rule(
    stack: Stack, resource: PolicyResource, rule: Mapping[str, Any], filter_: str, key: str
) -> Iterator[Grant]:
    """One AWS security-group permission: inline, `SecurityGroupRule` or `IngressRule`."""
    protocol = _protocol(_get(rule, "protocol", _get(rule, "ipProtocol")))
    cidrs = [
        *(_get(rule, "cidrBlocks") or []),
        *(_get(rule, "ipv6CidrBlocks") or []),
        _get(rule, "cidrIpv4"),
        _get(rule, "cidrIpv6"),
    ]
    lists = [*(_get(rule, "prefixListIds") or []), _get(rule, "prefixListId")]
    listed, unseen = stack.groups(
        resource, key, [p for p in lists if p], {AWS_PREFIX_LIST}, "prefix list"
    )
    yield Grant(
        resource,
        filter_,
        protocol,
        _ports(protocol, _get(rule, "fromPort"), _get(rule, "toPort")),
        Addresses.of([*cidrs, *listed]),
        unseen,
    )


def _aws_group(stack: Stack, resource: PolicyResource) -> Iterator[Grant]:
    for rule in _get(resource.props, "ingress") or []:
        yield from _aws_rule(stack, resource, rule, resource.urn, "ingress")


def _aws_group_rule(stack: Stack, resource: PolicyResource) -> Iterator[Grant]:
    if _get(resource.props, "type") == "ingress":
        group = stack.filter_of(resource, "securityGroupId")
        yield from _aws_rule(stack, resource, resource.props, group, "prefixListIds")


def _aws_ingress_rule(stack: Stack, resource: PolicyResource) -> Iterator[Grant]:
    group = stack.filter_of(resource, "securityGroupId")
    yield from _aws_rule(stack, resource, resource.props, group, "prefixListId")


def _acl_entry(
    resource: PolicyResource, entry: Mapping[str, Any], acl: str, number: str, action: str
) -> Grant:
    protocol = _protocol(_get(entry, "protocol"))
    return Grant(
        resource,
        acl,
        protocol,
        _ports(protocol, _get(entry, "fromPort"), _get(entry, "toPort")),
        Addresses.of([_get(entry, "cidrBlock"), _get(entry, "ipv6CidrBlock")]),
        allow=str(_get(entry, action)).lower() == "allow",
        order=float(_get(entry, number)),
    )


def _aws_acl(_stack: Stack, resource: PolicyResource) -> Iterator[Grant]:
    for entry in _get(resource.props, "ingress") or []:
        yield _acl_entry(resource, entry, resource.urn, "ruleNo", "action")


def _aws_acl_rule(stack: Stack, resource: PolicyResource) -> Iterator[Grant]:
    if not _get(resource.props, "egress", False):
        acl = stack.filter_of(resource, "networkAclId")
        yield _acl_entry(resource, resource.props, acl, "ruleNumber", "ruleAction")


def _neutron_rule(stack: Stack, resource: PolicyResource) -> Iterator[Grant]:
    """A Neutron rule with no remote prefix, group or address group admits every address."""
    props = resource.props
    if _get(props, "direction") != "ingress" or _is_set(props, "remoteGroupId"):
        return
    protocol = _protocol(_get(props, "protocol"))
    anywhere = "::/0" if _get(props, "ethertype", "IPv4") == "IPv6" else "0.0.0.0/0"
    group = _get(props, "remoteAddressGroupId")
    listed, unseen = (
        stack.groups(
            resource, "remoteAddressGroupId", [group], {OPENSTACK_ADDRESS_GROUP}, "address group"
        )
        if group
        else ([], ())
    )
    prefix = _get(props, "remoteIpPrefix") or ("" if group else anywhere)
    yield Grant(
        resource,
        stack.filter_of(resource, "securityGroupId"),
        protocol,
        _ports(protocol, _get(props, "portRangeMin"), _get(props, "portRangeMax")),
        Addresses.of([prefix, *listed]),
        unseen,
    )


def _nova_group(_stack: Stack, resource: PolicyResource) -> Iterator[Grant]:
    """Nova's inline rules: without a CIDR or a source group, Nova admits 0.0.0.0/0."""
    for rule in _get(resource.props, "rules") or []:
        if _is_set(rule, "fromGroupId") or _get(rule, "self", False):
            continue
        protocol = _protocol(_get(rule, "ipProtocol"))
        yield Grant(
            resource,
            resource.urn,
            protocol,
            _ports(protocol, _get(rule, "fromPort"), _get(rule, "toPort")),
            Addresses.of([_get(rule, "cidr") or "0.0.0.0/0"]),
        )


def _fwaas_rule(_stack: Stack, resource: PolicyResource) -> Iterator[Grant]:
    """An FWaaS allow rule; its firewall policy orders it among denies the pack does not see,
    so it counts alone."""
    props = resource.props
    if _get(props, "action") != "allow" or _get(props, "enabled", True) is False:
        return
    protocol = _protocol(_get(props, "protocol"))
    anywhere = "::/0" if str(_get(props, "ipVersion", 4)) == "6" else "0.0.0.0/0"
    for first, last in _port_strings(_get(props, "destinationPort")):
        yield Grant(
            resource,
            resource.urn,
            protocol,
            _ports(protocol, first, last),
            Addresses.of([_get(props, "sourceIpAddress") or anywhere]),
        )


def _gcp_firewall(stack: Stack, resource: PolicyResource) -> Iterator[Grant]:
    """A VPC firewall rule. Without source ranges, tags or service accounts GCP admits
    0.0.0.0/0; a deny that applies to some instances only is left out (it shadows nothing
    for the others)."""
    props = resource.props
    if _get(props, "direction", "INGRESS") != "INGRESS" or _get(props, "disabled", False):
        return
    ranges = list(_get(props, "sourceRanges") or [])
    by_identity = _is_set(props, "sourceTags") or _is_set(props, "sourceServiceAccounts")
    targeted = _is_set(props, "targetTags") or _is_set(props, "targetServiceAccounts")
    network = stack.filter_of(resource, "network")
    for key, allow in (("allows", True), ("denies", False)):
        if not allow and targeted:
            continue
        for entry in _get(props, key) or []:
            protocol = _protocol(_get(entry, "protocol"))
            for first, last in _port_strings(_get(entry, "ports")):
                yield Grant(
                    resource,
                    network,
                    protocol,
                    _ports(protocol, first, last),
                    Addresses.of(ranges or ([] if by_identity else ["0.0.0.0/0"])),
                    allow=allow,
                    order=float(_get(props, "priority", 1000)),
                )


GCP_UNSEEN_SOURCES = (
    "srcAddressGroups",
    "srcFqdns",
    "srcRegionCodes",
    "srcThreatIntelligences",
    "srcNetworks",
    "srcNetworkScope",
)


def _gcp_policy_rule(_stack: Stack, resource: PolicyResource) -> Iterator[Grant]:
    """A firewall policy rule; sources other than IP ranges and secure tags are unseen."""
    props = resource.props
    action = _get(props, "action")
    if _get(props, "direction", "INGRESS") != "INGRESS" or _get(props, "disabled", False):
        return
    match = _get(props, "match") or {}
    unseen = tuple(f"{key} of {resource.name}" for key in GCP_UNSEEN_SOURCES if _is_set(match, key))
    ranges = list(_get(match, "srcIpRanges") or [])
    if action == "deny" and (
        unseen
        or any(
            _is_set(props, k)
            for k in ("targetResources", "targetServiceAccounts", "targetSecureTags")
        )
    ):
        return
    if action not in ("allow", "deny"):
        return
    if not (ranges or unseen or _is_set(match, "srcSecureTags")):
        ranges = list(EVERYWHERE)
    for config in _get(match, "layer4Configs") or []:
        protocol = _protocol(_get(config, "ipProtocol"))
        for first, last in _port_strings(_get(config, "ports")):
            yield Grant(
                resource,
                _get(props, "firewallPolicy") or resource.urn,
                protocol,
                _ports(protocol, first, last),
                Addresses.of(ranges),
                unseen,
                allow=action == "allow",
                order=float(_get(props, "priority")),
            )


READERS: Mapping[str, Callable[[Stack, PolicyResource], Iterator[Grant]]] = {
    AWS_SECURITY_GROUP: _aws_group,
    AWS_DEFAULT_SECURITY_GROUP: _aws_group,
    AWS_SECURITY_GROUP_RULE: _aws_group_rule,
    AWS_INGRESS_RULE: _aws_ingress_rule,
    AWS_NETWORK_ACL: _aws_acl,
    AWS_DEFAULT_NETWORK_ACL: _aws_acl,
    AWS_NETWORK_ACL_RULE: _aws_acl_rule,
    OPENSTACK_RULE: _neutron_rule,
    OPENSTACK_COMPUTE_SECURITY_GROUP: _nova_group,
    OPENSTACK_FIREWALL_RULE: _fwaas_rule,
    GCP_FIREWALL: _gcp_firewall,
    **dict.fromkeys(GCP_POLICY_RULES, _gcp_policy_rule),
}
"""Every resource type that opens a port, and how to read its rules."""


def _admitted(grants: Iterable[Grant], port: int, transport: str) -> tuple[Addresses, list[Grant]]:
    """Whom a filter's rules admit to `port`, and the allow rules that admit them. Ordered
    filters decide by the first matching rule (a deny before an allow of the same order)."""
    decided, admitted, by = Addresses(), Addresses(), list[Grant]()
    for grant in sorted(grants, key=lambda g: (g.order, g.allow)):
        if not grant.covers(port, transport):
            continue
        new = grant.admits() - decided
        if grant.allow and new:
            admitted, by = admitted | new, [*by, grant]
        decided = decided | grant.admits()
    return admitted, by


@dataclass
class Exposure:
    """What one resource's rules help open to the world: which ports, to whom."""

    ports: set[int] = field(default_factory=set)
    admitted: Addresses = field(default_factory=Addresses)
    unseen: set[str] = field(default_factory=set)

    def message(self, names: Mapping[int, str]) -> str:
        ports = ", ".join(f"{p} ({names[p]})" for p in sorted(self.ports))
        blind = (
            f"; {', '.join(sorted(self.unseen))} is not declared in this stack, so counts as anyone"
            if self.unseen
            else ""
        )
        return (
            f"{ports} open to the world: the rules of its security group, ACL or firewall "
            f"together admit {self.admitted.describe()}{blind}"
        )


def _exposures(
    grants: Iterable[Grant], ports: Mapping[int, str], filters: Set[str] | None = None
) -> dict[str, Exposure]:
    """Resource URN → what its rules, with the others of their filter, open to the world among
    `ports` (on the `filters` given, else on all)."""
    by_filter: dict[str, list[Grant]] = defaultdict(list)
    for grant in grants:
        if filters is None or grant.filter in filters:
            by_filter[grant.filter].append(grant)
    found: dict[str, Exposure] = defaultdict(Exposure)
    for group in by_filter.values():
        for port in ports:
            for transport in TRANSPORTS:
                admitted, by = _admitted(group, port, transport)
                if not admitted.is_world():
                    continue
                for grant in by:
                    exposure = found[grant.resource.urn]
                    exposure.ports.add(port)
                    exposure.admitted = exposure.admitted | admitted
                    exposure.unseen.update(grant.unseen)
    return found


def validate_no_open_management_ports(args: StackValidationArgs, report: ReportViolation) -> None:
    """Service ports may face the internet; management ports never do, whatever way the rules
    that open them are split."""
    found = _exposures(Stack(list(args.resources)).grants(), MANAGEMENT_PORTS)
    for urn, exposure in found.items():
        report(
            f"{exposure.message(MANAGEMENT_PORTS)}; allow the operators' and Direct Connect "
            "CIDRs instead",
            urn,
        )


# --- the cluster API ------------------------------------------------------------------------

API_PORT = {443: "Kubernetes API"}


def _eks_api(cluster: PolicyResource) -> Iterator[str]:
    """An EKS endpoint is public unless turned off (`endpointPublicAccess` defaults to true),
    and then admits `publicAccessCidrs` (default 0.0.0.0/0)."""
    vpc = _get(cluster.props, "vpcConfig") or {}
    if _get(vpc, "endpointPublicAccess", True) is not False:
        cidrs = Addresses.of(_get(vpc, "publicAccessCidrs") or ["0.0.0.0/0"])
        if cidrs.is_world():
            yield f"its public endpoint admits {cidrs.describe()} (vpcConfig.publicAccessCidrs)"


def _gke_api(cluster: PolicyResource) -> Iterator[str]:
    """A GKE control plane has a public endpoint unless it is private (or its IP endpoints are
    off); without authorized networks that endpoint admits everyone."""
    private = _get(
        _get(cluster.props, "privateClusterConfig") or {}, "enablePrivateEndpoint", False
    )
    endpoints = (
        _get(_get(cluster.props, "controlPlaneEndpointsConfig") or {}, "ipEndpointsConfig") or {}
    )
    if private is True or _get(endpoints, "enabled", True) is False:
        return
    authorized = _get(cluster.props, "masterAuthorizedNetworksConfig")
    if not isinstance(authorized, Mapping):
        yield "its public endpoint has no masterAuthorizedNetworksConfig, so it admits anyone"
        return
    if _get(authorized, "gcpPublicCidrsAccessEnabled", False):
        yield "gcpPublicCidrsAccessEnabled admits every Google Cloud public address"
    cidrs = Addresses.of(_get(b, "cidrBlock") for b in _get(authorized, "cidrBlocks") or [])
    if cidrs.is_world():
        yield f"its authorized networks admit {cidrs.describe()}"


def validate_cluster_api_not_open_to_world(
    args: StackValidationArgs, report: ReportViolation
) -> None:
    """The Kubernetes API on 443 from anywhere is a management port under another number: an
    EKS or GKE public endpoint without narrow CIDRs, or a rule opening 443 on the security
    groups of an EKS control plane."""
    stack = Stack(list(args.resources))
    api_groups: set[str] = set()
    for cluster in stack.resources:
        try:
            if cluster.resource_type == EKS_CLUSTER:
                api_groups.add(cluster.urn)
                api_groups.update(
                    d.urn for d in stack.depended(cluster, "vpcConfig", {AWS_SECURITY_GROUP})
                )
                ids = _get(_get(cluster.props, "vpcConfig") or {}, "securityGroupIds") or []
                api_groups.update(i for i in ids if isinstance(i, str))
                problems = list(_eks_api(cluster))
            elif cluster.resource_type == GKE_CLUSTER:
                problems = list(_gke_api(cluster))
            else:
                continue
        except UnknownValueError:
            continue
        for problem in problems:
            report(
                f"cluster {cluster.name}: the Kubernetes API is open to the world: {problem}; "
                "keep the endpoint private or list the operators' networks",
                cluster.urn,
            )
    for urn, exposure in _exposures(stack.grants(), API_PORT, api_groups).items():
        report(
            f"{exposure.message(API_PORT)}, on the security group of an EKS control plane; "
            "allow the operators' and Direct Connect CIDRs instead",
            urn,
        )


# --- prod protects what carries traffic ------------------------------------------------------


def validate_traffic_resources_protected(
    args: ResourceValidationArgs, report: ReportViolation
) -> None:
    """In prod, deleting an LB or a cluster is an outage; `protect` makes it a deliberate act.

    This reads the protect option the program declares in this run (`opts.protect`); a
    `pulumi state unprotect` done outside a run is not visible to a policy.
    """
    if args.resource_type not in TRAFFIC_TYPES:
        return
    stacks = args.get_config().get("stacks", list(PROTECTED_STACKS_DEFAULT))
    if _stack_of(args.urn) in stacks and not args.opts.protect:
        report(
            f"{args.resource_type} carries traffic in stack {_stack_of(args.urn)!r} but is not "
            "protected; set hybrid-infra:protect: true (or protect=True on the resource)",
            None,
        )


# --- tags ------------------------------------------------------------------------------------


def _tags(value: Any) -> dict[str, Any]:
    """Tags from a resource's `tags` or a provider's `defaultTags` (JSON text on providers)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    if not isinstance(value, Mapping):
        return {}
    inner = _get(value, "tags")
    if isinstance(inner, (Mapping, str)):
        return _tags(inner)
    return dict(value)


def validate_required_tags(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """Owner, cost centre and environment on every AWS resource, for cost and on-call routing."""
    type_ = args.resource_type
    if not type_.startswith("aws:") or type_ in UNTAGGABLE_AWS_TYPES:
        return
    try:
        tags = _tags(_get(args.props, "tags"))
        if args.provider is not None:
            tags = {**_tags(_get(args.provider.props, "defaultTags")), **tags}
    except UnknownValueError:
        return
    missing = [t for t in REQUIRED_TAGS if not tags.get(t)]
    if missing:
        report(
            f"missing required tag(s) {', '.join(missing)}; set them in hybrid-infra:tags "
            "(the aws provider's defaultTags) or on the resource",
            None,
        )


# --- the policies ----------------------------------------------------------------------------

MANDATORY = EnforcementLevel.MANDATORY
ADVISORY = EnforcementLevel.ADVISORY

POLICIES: list[ResourceValidationPolicy | StackValidationPolicy] = [
    StackValidationPolicy(
        name="hybrid-lb-has-nlb-twin-and-sync",
        description="Every hybrid LB has exactly one NLB twin and one sync binding all its pools.",
        enforcement_level=MANDATORY,
        validate=validate_hybrid_lb_twins,
    ),
    ResourceValidationPolicy(
        name="nlb-target-group-health-check",
        description="Every NLB target group has an enabled health check.",
        enforcement_level=MANDATORY,
        validate=validate_target_group_health_check,
    ),
    ResourceValidationPolicy(
        name="weighted-record-health-check",
        description="Every weighted Route53 record has a health check.",
        enforcement_level=MANDATORY,
        validate=validate_weighted_record_health_check,
    ),
    StackValidationPolicy(
        name="weighted-records-not-all-zero",
        description="The weighted records of one name are never all weight 0.",
        enforcement_level=MANDATORY,
        validate=validate_weights_not_all_zero,
    ),
    StackValidationPolicy(
        name="no-management-ports-open-to-world",
        description="No set of rules opens a management port to the world, IPv4 or IPv6.",
        enforcement_level=MANDATORY,
        validate=validate_no_open_management_ports,
    ),
    StackValidationPolicy(
        name="cluster-api-not-open-to-world",
        description="No Kubernetes API endpoint or control-plane rule admits the world on 443.",
        enforcement_level=MANDATORY,
        validate=validate_cluster_api_not_open_to_world,
    ),
    ResourceValidationPolicy(
        name="traffic-resources-protected",
        description="In prod, load balancers and clusters are protected from deletion.",
        enforcement_level=MANDATORY,
        validate=validate_traffic_resources_protected,
        config_schema=PolicyConfigSchema(
            properties={
                "stacks": {
                    "type": "array",
                    "items": {"type": "string"},
                    "default": list(PROTECTED_STACKS_DEFAULT),
                }
            }
        ),
    ),
    ResourceValidationPolicy(
        name="required-tags",
        description="AWS resources carry the owner, cost-center and environment tags.",
        enforcement_level=ADVISORY,
        validate=validate_required_tags,
    ),
]
