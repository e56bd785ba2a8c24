"""What the synth views know about resource types: short names, key inputs, family, order.

Everything here is a presentation hint. A type that is not listed still shows up everywhere
(tree, graph, diff) with a name derived from its token and a few scalar inputs, so new
components and resources need no change here to be visible; listing them only makes them
read better.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Inputs = Mapping[str, Any]
Extract = Callable[[Inputs], Any]
KeySpec = str | tuple[str, Extract]

FAMILIES = ("provider", "openstack", "aws", "dynamic", "gcp", "kubernetes", "component", "other")
HYBRID_LB = "hybrid-infra:lb:HybridLoadBalancer"
WEIGHTED_DNS = "hybrid-infra:dns:WeightedFailover"
CLUSTERS_PREFIX = "hybrid-infra:clusters:"
PROD = "hybrid-infra:prod:Prod"
FALLBACK_KEYS = 4
SKIPPED_IN_FALLBACK = frozenset({"name", "tags", "tagsAll", "description", "__provider"})
_INDEX = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


@dataclass(frozen=True, slots=True)
class Kind:
    """How one resource type is shown. `keys=None` means: pick a few scalar inputs."""

    label: str
    family: str
    keys: tuple[KeySpec, ...] | None = None
    order: int = 50
    brief: Extract | None = None  # one token for a line in a collapsed group of these


def lookup(inputs: Any, path: str) -> Any:
    """The value at `a.b[0].c`, or None where any step is missing."""
    node = inputs
    for key, index in _INDEX.findall(path):
        if index:
            if not isinstance(node, list) or int(index) >= len(node):
                return None
            node = node[int(index)]
        else:
            if not isinstance(node, Mapping):
                return None
            node = node.get(key)
    return node


def _joined(*paths: str, sep: str = ":") -> Extract:
    """`TCP:443` from `protocol` and `protocolPort`, when all parts exist."""

    def extract(inputs: Inputs) -> Any:
        parts = [lookup(inputs, p) for p in paths]
        return None if any(p is None for p in parts) else sep.join(str(p) for p in parts)

    return extract


def _count(path: str) -> Extract:
    def extract(inputs: Inputs) -> Any:
        value = lookup(inputs, path)
        return len(value) if isinstance(value, list | Mapping) else None

    return extract


def _rules(path: str) -> Extract:
    """Security group rules as `tcp/443,udp/443`: the ports are what a reviewer checks."""

    def extract(inputs: Inputs) -> Any:
        rules = lookup(inputs, path)
        if not isinstance(rules, list) or not rules:
            return None
        shown = []
        for rule in rules:
            low, high = lookup(rule, "fromPort"), lookup(rule, "toPort")
            ports = str(low) if low == high else f"{low}-{high}"
            shown.append(f"{lookup(rule, 'protocol')}/{ports}")
        return ",".join(dict.fromkeys(shown))

    return extract


def _scaling(path: str) -> Extract:
    """`min/desired/max` of a node group."""
    return _joined(f"{path}.minSize", f"{path}.desiredSize", f"{path}.maxSize", sep="/")


KINDS: dict[str, Kind] = {
    # providers: only what tells the stacks apart
    "pulumi:providers:aws": Kind("AWS provider", "provider", ("region",), 0),
    "pulumi:providers:openstack": Kind("OpenStack provider", "provider", ("cloud",), 1),
    "pulumi:providers:gcp": Kind("GCP provider", "provider", ("project", "region"), 2),
    "pulumi:providers:kubernetes": Kind("k8s provider", "provider", ("context", "namespace"), 3),
    # Octavia, in the order traffic meets it
    "openstack:loadbalancer/loadBalancer:LoadBalancer": Kind(
        "Octavia LB", "openstack", ("vipSubnetId", "vipAddress"), 0
    ),
    "openstack:loadbalancer/listener:Listener": Kind(
        "Octavia listener", "openstack", (("listen", _joined("protocol", "protocolPort")),), 1
    ),
    "openstack:loadbalancer/pool:Pool": Kind("pool", "openstack", ("protocol", "lbMethod"), 2),
    "openstack:loadbalancer/monitor:Monitor": Kind(
        "health monitor", "openstack", ("type", "delay", "timeout", "maxRetries", "urlPath"), 3
    ),
    "openstack:loadbalancer/member:Member": Kind(
        "member",
        "openstack",
        (("at", _joined("address", "protocolPort")), "weight", "adminStateUp"),
        4,
        brief=lambda i: _member_brief(i),
    ),
    "openstack:networking/secGroup:SecGroup": Kind("security group", "openstack", (), 5),
    "openstack:networking/secGroupRule:SecGroupRule": Kind(
        "rule",
        "openstack",
        ("direction", ("port", _joined("protocol", "portRangeMin", sep="/")), "remoteIpPrefix"),
        6,
        brief=_joined("protocol", "portRangeMin", "remoteIpPrefix", sep=" "),
    ),
    "openstack:containerinfra/clusterTemplate:ClusterTemplate": Kind(
        "Magnum template", "openstack", ("coe", "image", "flavor", "masterFlavor"), 7
    ),
    "openstack:containerinfra/cluster:Cluster": Kind(
        "Magnum cluster", "openstack", ("masterCount", "nodeCount", "flavor", "keypair"), 8
    ),
    # the NLB twin
    "aws:ec2/securityGroup:SecurityGroup": Kind(
        "security group", "aws", (("in", _rules("ingress")), ("out", _rules("egress"))), 10
    ),
    "aws:lb/loadBalancer:LoadBalancer": Kind(
        "NLB", "aws", ("loadBalancerType", "internal", ("subnets", _count("subnets"))), 11
    ),
    "aws:lb/targetGroup:TargetGroup": Kind(
        "target group",
        "aws",
        (
            ("listen", _joined("protocol", "port")),
            "targetType",
            "deregistrationDelay",
            "proxyProtocolV2",
            ("check", _joined("healthCheck.protocol", "healthCheck.port")),
        ),
        12,
    ),
    "aws:lb/listener:Listener": Kind(
        "NLB listener", "aws", (("listen", _joined("protocol", "port")),), 13
    ),
    # clusters
    "aws:iam/role:Role": Kind("IAM role", "aws", (), 20),
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": Kind("policy", "aws", ("policyArn",), 21),
    "aws:iam/openIdConnectProvider:OpenIdConnectProvider": Kind("OIDC provider", "aws", (), 22),
    "aws:eks/cluster:Cluster": Kind("EKS cluster", "aws", ("version",), 23),
    "aws:eks/nodeGroup:NodeGroup": Kind(
        "node group",
        "aws",
        ("instanceTypes", ("min/desired/max", _scaling("scalingConfig"))),
        24,
    ),
    "gcp:container/cluster:Cluster": Kind(
        "GKE cluster", "gcp", ("location", "minMasterVersion"), 30
    ),
    "gcp:container/nodePool:NodePool": Kind(
        "node pool",
        "gcp",
        ("version", "nodeCount", ("machine", _joined("nodeConfig.machineType"))),
        31,
    ),
    # DNS: health checks, then the weighted records
    "aws:route53/healthCheck:HealthCheck": Kind(
        "health check",
        "aws",
        ("type", "ipAddress", "fqdn", "port", "resourcePath", "cloudwatchAlarmName"),
        40,
    ),
    "aws:cloudwatch/metricAlarm:MetricAlarm": Kind(
        "alarm", "aws", ("metricName", "comparisonOperator", "threshold"), 41
    ),
    "aws:route53/record:Record": Kind(
        "DNS record",
        "aws",
        (
            "setIdentifier",
            ("weight", lambda i: lookup(i, "weightedRoutingPolicies[0].weight")),
            "name",
            "records",
            ("alias", lambda i: lookup(i, "aliases[0].name")),
        ),
        42,
    ),
    # the sync
    "pulumi-python:dynamic/hybrid-infra:OctaviaNlbSync": Kind(
        "Octavia→NLB sync",
        "dynamic",
        (
            "loadbalancer_id",
            ("bindings", _count("bindings")),
            "owns_target_groups",
            "max_deregister_fraction",
        ),
        0,
    ),
    # components
    "hybrid-infra:platform:Platform": Kind("platform", "component", (), 0),
    HYBRID_LB: Kind("hybrid LB", "component", (), 1),
    WEIGHTED_DNS: Kind("weighted DNS", "component", (), 2),
    f"{CLUSTERS_PREFIX}ClusterFleet": Kind("cluster fleet", "component", (), 3),
    f"{CLUSTERS_PREFIX}OnPremCluster": Kind("on-prem cluster (Magnum)", "component", (), 3),
    f"{CLUSTERS_PREFIX}EksCluster": Kind("EKS cluster", "component", (), 3),
    f"{CLUSTERS_PREFIX}GkeCluster": Kind("GKE cluster", "component", (), 3),
    f"{CLUSTERS_PREFIX}BlueGreenNodePool": Kind("GKE node pool", "component", (), 3),
    PROD: Kind("Prod", "component", (), 4),
}


def _member_brief(inputs: Inputs) -> str | None:
    """`172.17.10.11:8443`, flagged when drained (weight 0 or admin down)."""
    at = _joined("address", "protocolPort")(inputs)
    drained = inputs.get("weight") == 0 or inputs.get("adminStateUp") is False
    return f"{at} (drained)" if at and drained else at


_FAMILY_BY_PACKAGE = {
    "openstack": "openstack",
    "aws": "aws",
    "gcp": "gcp",
    "kubernetes": "kubernetes",
    "pulumi-python": "dynamic",
}


def kind_of(type_: str, custom: bool = True) -> Kind:
    """The listed kind, or one derived from the token (`aws:s3/bucket:Bucket` → `Bucket`)."""
    if type_ in KINDS:
        return KINDS[type_]
    name = type_.rsplit(":", 1)[-1]
    if type_.startswith("pulumi:providers:"):
        return Kind(f"{name} provider", "provider", None, 9)
    if type_.startswith(CLUSTERS_PREFIX):
        return Kind(_words(name), "component", (), 3)
    if not custom:
        return Kind(_words(name), "component", (), 9)
    if type_.startswith("kubernetes:"):
        return Kind(name, "kubernetes", ("metadata.namespace", "metadata.name"), 50)
    family = _FAMILY_BY_PACKAGE.get(type_.split(":", 1)[0], "other")
    return Kind(name, family, None, 50)


def short_type(type_: str) -> str:
    """A token short enough for a tree line: `aws:lb/loadBalancer:LoadBalancer` → `aws:lb:…`."""
    if type_.startswith("pulumi:providers:"):
        return f"provider:{type_.rsplit(':', 1)[-1]}"
    package, _, rest = type_.partition(":")
    module, _, name = rest.rpartition(":")
    if package == "pulumi-python":
        return f"dynamic:{name}"
    if package == "hybrid-infra":
        return name
    return f"{package}:{module.split('/')[0]}:{name}" if module else type_


def sort_key(type_: str, name: str, custom: bool = True) -> tuple[int, int, str, str]:
    """Siblings in diagram order: providers, Octavia, NLB, sync, clusters, components."""
    kind = kind_of(type_, custom)
    return (FAMILIES.index(kind.family), kind.order, type_, name)


def key_inputs(type_: str, name: str, inputs: Inputs, custom: bool = True) -> list[tuple[str, Any]]:
    """The (label, value) pairs worth a glance for this resource, empty values left out."""
    kind = kind_of(type_, custom)
    if kind.keys is None:
        return _fallback(name, inputs)
    found = []
    for spec in kind.keys:
        label, value = (
            (spec.rsplit(".", 1)[-1], lookup(inputs, spec))
            if isinstance(spec, str)
            else (spec[0], spec[1](inputs))
        )
        if value is not None and value != [] and value != "":
            found.append((label, value))
    return found


def brief(type_: str, name: str, inputs: Inputs, custom: bool = True) -> str:
    """One short token for a resource: its kind's brief, else its first key input, else name."""
    kind = kind_of(type_, custom)
    if kind.brief is not None:
        value = kind.brief(inputs)
        if value is not None:
            return format_value(value, 28)
    pairs = key_inputs(type_, name, inputs, custom)
    return format_value(pairs[0][1], 28) if pairs else name


def title(type_: str, name: str, custom: bool = False) -> str:
    """`EKS cluster B`; just `cluster fleet` when the name only repeats the label."""
    label = kind_of(type_, custom).label
    return label if name.lower() in label.lower().split() else f"{label} {name}"


def _fallback(name: str, inputs: Inputs) -> list[tuple[str, Any]]:
    """A few scalar inputs, alphabetically, for types nobody listed yet."""
    found = []
    for key in sorted(inputs):
        value = inputs[key]
        if key in SKIPPED_IN_FALLBACK or value == name:
            continue
        if value is None or isinstance(value, Mapping | list):
            continue
        found.append((key, value))
        if len(found) == FALLBACK_KEYS:
            break
    return found


def format_value(value: Any, limit: int = 40) -> str:
    """One compact token: lowercase booleans, short lists inline, long text cut in the middle."""
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    if isinstance(value, list | Mapping) and not value:
        return "[]" if isinstance(value, list) else "{}"
    if isinstance(value, list):
        if len(value) <= 3 and all(not isinstance(v, Mapping | list) for v in value):
            return ",".join(format_value(v, limit) for v in value)
        return f"[{len(value)}]"
    if isinstance(value, Mapping):
        return f"{{{len(value)}}}"
    text = str(value)
    if len(text) > limit:
        keep = (limit - 1) // 2
        return f"{text[:keep]}…{text[-keep:]}"
    return text


def _words(name: str) -> str:
    """`EdgeProxy` → `edge proxy`, for labels of unlisted components."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name).lower()
