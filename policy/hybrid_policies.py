"""CrossGuard policies for hybrid-infra, as plain functions the pack and the tests both call.

Each rule is mandatory or advisory by what it protects:

- mandatory: the failover path (NLB twin, sync, health checks, weights), the control plane's
  exposure (management ports) and prod's traffic-carrying resources (protect);
- advisory: bookkeeping (cost tags), which must never block an emergency fix.

The pack runs with the pack directory as its only project code (the CLI starts it there), so
this module depends on `pulumi_policy` and the standard library, never on `components/`.
Property names are the engine's wire names (camelCase), as the policies receive them.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from ipaddress import ip_network
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

# Control-plane ports that must never face the internet: an exposed controller gets
# attacked. TCP unless the protocol says otherwise; a rule that opens "all" opens these too.
MANAGEMENT_PORTS: Mapping[int, str] = {
    22: "SSH",
    2379: "etcd",
    2380: "etcd peer",
    3306: "MySQL (OpenStack DB)",
    3389: "RDP",
    5000: "Keystone",
    5672: "RabbitMQ",
    6443: "Kubernetes API",
    8004: "Heat",
    8774: "Nova",
    8776: "Cinder",
    8778: "Placement",
    9292: "Glance",
    9511: "Magnum",
    9696: "Neutron",
    9876: "Octavia",
    10250: "kubelet",
    35357: "Keystone admin",
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


# --- management ports ------------------------------------------------------------------------


def _world(cidrs: Iterable[Any]) -> list[str]:
    """The CIDRs among `cidrs` that mean "anywhere"."""
    found = []
    for cidr in cidrs:
        try:
            if isinstance(cidr, str) and ip_network(cidr, strict=False).prefixlen == 0:
                found.append(cidr)
        except ValueError:
            continue
    return found


def _exposed_ports(protocol: Any, low: Any, high: Any) -> list[int]:
    """Management ports inside one rule's protocol and port range (None = every port)."""
    proto = str(protocol).lower() if protocol not in (None, "") else "all"
    if proto in ("-1", "all", "any"):
        return sorted(MANAGEMENT_PORTS)
    if proto not in ("tcp", "6"):
        return []
    lo = 0 if low in (None, "") else int(low)
    hi = 65535 if high in (None, "") else int(high)
    if (lo, hi) == (0, 0):
        lo, hi = 0, 65535
    return [port for port in sorted(MANAGEMENT_PORTS) if lo <= port <= hi]


def _describe(ports: list[int]) -> str:
    return ", ".join(f"{p} ({MANAGEMENT_PORTS[p]})" for p in ports)


def _aws_ingress_rules(args: ResourceValidationArgs) -> Iterator[tuple[Any, Any, Any, list[Any]]]:
    """(protocol, from, to, cidrs) for every ingress rule an AWS resource declares."""
    props = args.props
    if args.resource_type == AWS_SECURITY_GROUP:
        for rule in _get(props, "ingress") or []:
            cidrs = [*(_get(rule, "cidrBlocks") or []), *(_get(rule, "ipv6CidrBlocks") or [])]
            yield _get(rule, "protocol"), _get(rule, "fromPort"), _get(rule, "toPort"), cidrs
    elif args.resource_type == AWS_SECURITY_GROUP_RULE and _get(props, "type") == "ingress":
        cidrs = [*(_get(props, "cidrBlocks") or []), *(_get(props, "ipv6CidrBlocks") or [])]
        yield _get(props, "protocol"), _get(props, "fromPort"), _get(props, "toPort"), cidrs
    elif args.resource_type == AWS_INGRESS_RULE:
        cidrs = [c for c in (_get(props, "cidrIpv4"), _get(props, "cidrIpv6")) if c]
        yield _get(props, "ipProtocol"), _get(props, "fromPort"), _get(props, "toPort"), cidrs


def validate_no_open_management_ports(
    args: ResourceValidationArgs, report: ReportViolation
) -> None:
    """Service ports may face the internet; control-plane ports never do."""
    try:
        if args.resource_type == OPENSTACK_RULE:
            rules = list(_openstack_ingress(args.props))
        else:
            rules = list(_aws_ingress_rules(args))
    except UnknownValueError:
        return
    for protocol, low, high, cidrs in rules:
        world = _world(cidrs)
        ports = _exposed_ports(protocol, low, high) if world else []
        if ports:
            report(
                f"ingress {protocol or 'any'} {low or 0}-{high or 65535} from "
                f"{', '.join(world)} opens management port(s) {_describe(ports)}; "
                "allow the operators' and Direct Connect CIDRs instead",
                None,
            )


def _openstack_ingress(props: Mapping[str, Any]) -> Iterator[tuple[Any, Any, Any, list[Any]]]:
    """A Neutron rule with no remote prefix and no remote group admits every address."""
    if _get(props, "direction") != "ingress":
        return
    prefix = _get(props, "remoteIpPrefix")
    if not prefix and _is_set(props, "remoteGroupId"):
        return
    ethertype = _get(props, "ethertype", "IPv4")
    anywhere = "::/0" if ethertype == "IPv6" else "0.0.0.0/0"
    yield (
        _get(props, "protocol"),
        _get(props, "portRangeMin"),
        _get(props, "portRangeMax"),
        [prefix or anywhere],
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
    ResourceValidationPolicy(
        name="no-management-ports-open-to-world",
        description="No security group rule opens a control-plane port to 0.0.0.0/0 or ::/0.",
        enforcement_level=MANDATORY,
        validate=validate_no_open_management_ports,
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
