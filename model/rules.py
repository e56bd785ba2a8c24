"""Every rule that spans keys of a stack file, each problem with its key path (pure).

`model.stack.parse` runs all of them on every read (the program, synth, the release tools), so
no caller can forget one. Rules that Octavia, AWS or GKE would otherwise enforce only when the
API is called are stated here, at config time; docs/cloud-rules.md lists their sources.
Rules that depend on the calendar (a Kubernetes minor's end of support) take the day as an
input, so a test can fix it.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from datetime import date
from ipaddress import IPv4Network, ip_address

from model import fleet, kubernetes_versions
from model.config import (
    Edge,
    GkeClusterSpec,
    ListenerSpec,
    LoadBalancerSpec,
    OnPremClusterSpec,
    StackConfig,
    did_you_mean,
    duplicates,
    version_tag,
)
from model.fleet import FleetCluster
from model.gke_names import (
    GKE_NAME,
    SERVICE_ACCOUNT_ID,
    gke_name,
    node_pool_name,
    node_service_account_id,
)
from model.management_ports import management_port
from model.placement import Stranded, place, placement_for, roomiest, spare
from model.release import describe_waves, release_plan
from model.service_exposure import reached_from_other_clusters
from model.stackfile import PROJECT

REQUIRED_TAGS = ("owner", "cost-center", "environment")


def _clouds_configured(config: StackConfig) -> list[str]:
    """`aws` and `onPrem` are needed by what uses those clouds, and only then: a stack of
    existing clusters alone names neither."""
    kinds = {c.kind for c in fleet.clusters(config).values()}
    lbs = bool(config.load_balancers) or config.discovery is not None
    needs = {
        "aws": (config.aws, lbs or "eks" in kinds),
        "onPrem": (config.on_prem, lbs or "onprem" in kinds or "eks" in kinds),
    }
    return [
        f"{PROJECT}:{key}: required key is missing (load balancers, discovery and "
        f"{'EKS' if key == 'aws' else 'on-prem and EKS'} clusters need it)"
        for key, (value, needed) in needs.items()
        if needed and value is None
    ]


def problems(config: StackConfig, today: date) -> list[str]:
    """Every rule across keys, on `today`; an empty list means the stack may be built."""
    problems = _clouds_configured(config)
    lbs = f"{PROJECT}:loadBalancers"
    for name in sorted(duplicates(lb.name for lb in config.load_balancers)):
        problems.append(f"{lbs}: duplicate name {name!r}")
    for fqdn in sorted(duplicates(lb.dns.fqdn for lb in config.load_balancers)):
        problems.append(f"{lbs}: DNS name {fqdn!r} is used by more than one load balancer")
    for i, lb in enumerate(config.load_balancers):
        problems.extend(_check_lb(config, lb, f"{lbs}[{i}]"))
    problems.extend(_check_discovery(config))

    for name, cluster in config.clusters.items():
        twin = fleet.twin_name(name)
        if isinstance(cluster, OnPremClusterSpec) and cluster.twin and twin in config.clusters:
            problems.append(
                f"{PROJECT}:clusters.{name}.twin: the twin would be named {twin}, "
                "which is already a configured cluster"
            )
        if isinstance(cluster, GkeClusterSpec):
            problems.extend(_gke(name, cluster))
    clusters = fleet.clusters(config)
    problems.extend(kubernetes_versions.check(clusters, today).errors)
    eks = [n for n, c in clusters.items() if c.kind == "eks"]
    if eks and config.aws is not None and not config.aws.cluster_admin_roles:
        problems.append(
            f"{PROJECT}:aws.clusterAdminRoles: the EKS clusters ({', '.join(eks)}) admit only IAM "
            "principals with an access entry; name the roles that deploy this stack "
            "(Pulumi Deployments, the CI workflow), or they get 401 from the Kubernetes API"
        )
    if config.aws is not None:
        for role in sorted(
            set(config.aws.cluster_admin_roles) & set(config.aws.cluster_viewer_roles)
        ):
            problems.append(
                f"{PROJECT}:aws.clusterViewerRoles: {role} is also in aws.clusterAdminRoles; "
                "a reader identity must not hold cluster admin (docs/delivery.md): keep it in one "
                "list"
            )
    for name, prod in config.prods.items():
        if prod.cluster not in clusters:
            problems.append(
                f"{PROJECT}:prods.{name}.cluster: unknown cluster {prod.cluster!r}"
                f"{did_you_mean(prod.cluster, clusters)}"
            )
    segs = f"{PROJECT}:segments"
    for name in sorted(duplicates(s.name for s in config.segments)):
        problems.append(f"{segs}: duplicate name {name!r}")
    for i, segment in enumerate(config.segments):
        for j, prod_name in enumerate(segment.prods):
            if prod_name not in config.prods:
                problems.append(
                    f"{segs}[{i}].prods[{j}]: unknown prod {prod_name!r}"
                    f"{did_you_mean(prod_name, config.prods)}"
                )
        known = [config.prods[p].cluster for p in segment.prods if p in config.prods]
        if len(segment.prods) == 2 and len(known) == 2 and known[0] == known[1]:
            problems.append(
                f"{segs}[{i}].prods: a redundant segment needs Prods on two different clusters "
                f"(both are on {known[0]!r})"
            )
    problems.extend(_check_edge(config))
    if config.prods and (config.app is None or config.release is None):
        problems.append(f"{PROJECT}:prods: Prods need both the app and release keys")
    problems.extend(_check_prods(config, clusters))
    problems.extend(_check_monitoring(config, clusters))
    for tag in REQUIRED_TAGS:
        if tag not in config.tags:
            problems.append(f"{PROJECT}:tags.{tag}: required tag is missing")
    return problems


def warnings(config: StackConfig, today: date) -> list[str]:
    """What may be built but needs attention soon, with key paths; the program logs each."""
    return list(kubernetes_versions.check(fleet.clusters(config), today).warnings)


def _check_edge(config: StackConfig) -> list[str]:
    """Users reach Prods through the edge proxy: it needs a default segment.

    Proxies reach a Prod on another cluster through the internal load balancer the program
    gives it (`model.service_exposure`), so an address is required only with `edge.tls`; one
    that is given overrides that load balancer and must name a Prod that other clusters route to.
    """
    if not config.prods:
        return []
    if config.edge is None:
        return [
            f"{PROJECT}:edge: Prods are reached through the edge proxy; give at least "
            "edge.defaultSegment (where requests with no known segment go)"
        ]
    problems = []
    names = [s.name for s in config.segments]
    if config.edge.default_segment not in names:
        problems.append(
            f"{PROJECT}:edge.defaultSegment: unknown segment {config.edge.default_segment!r}"
            f"{did_you_mean(config.edge.default_segment, names)}"
        )
    elsewhere = sorted({s.name for s in config.segments} - {config.edge.default_segment})
    if elsewhere and not config.edge.trusted_sources:
        chosen_by = f"cookie {config.edge.cookie}" if config.edge.cookie else config.edge.header
        problems.append(
            f"{PROJECT}:edge.trustedSources: the segment ({chosen_by}) is believed only from "
            f"these networks and none is listed, so every request would go to "
            f"{config.edge.default_segment} and {', '.join(elsewhere)} would get no user; list "
            "the CIDRs of the layer that sets it (the identity proxy, the CDN)"
        )
    reached = reached_from_other_clusters(config)
    for prod in sorted(config.edge.addresses):
        if prod not in config.prods:
            problems.append(
                f"{PROJECT}:edge.addresses.{prod}: unknown prod{did_you_mean(prod, config.prods)}"
            )
        elif prod not in reached:
            problems.append(
                f"{PROJECT}:edge.addresses.{prod}: every Prod runs on one cluster, so no proxy "
                f"reaches {prod} from another; remove the address"
            )
    if config.edge.tls is not None:
        problems.extend(_tls_addresses(config.edge, config, reached))
    return problems


def _tls_addresses(edge: Edge, config: StackConfig, reached: frozenset[str]) -> list[str]:
    """With `edge.tls`, every Prod that other clusters reach needs an address in
    `edge.addresses`, by host name: the internal load balancer the program gives a Prod passes
    TCP to its plaintext port, and the proxy sends the host as SNI and checks the certificate
    against it, which an IP address cannot be."""
    problems = []
    for prod in sorted(reached):
        address = edge.addresses.get(prod)
        key = f"{PROJECT}:edge.addresses.{prod}"
        if address is None:
            problems.append(
                f"{key}: edge.tls is set, so proxies on other clusters reach {prod} over TLS, "
                "which its internal load balancer (TCP to the Prod's plaintext port) cannot "
                f"serve; give the host:port of a TLS endpoint for {prod} on cluster "
                f"{config.prods[prod].cluster}, with a certificate for that host signed by "
                "edge.tls.ca"
            )
        elif _is_ip(host := address.rpartition(":")[0]):
            problems.append(
                f"{key}: with edge.tls the host must be a DNS name (the proxy sends it as SNI "
                f"and checks the certificate against it), not the IP address {host}"
            )
    return problems


def _is_ip(host: str) -> bool:
    try:
        ip_address(host)
    except ValueError:
        return False
    return True


_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$")
_DIGEST = re.compile(r"^(@sha256:[0-9a-f]{64})?$")


def _check_prods(config: StackConfig, clusters: Mapping[str, FleetCluster]) -> list[str]:
    """Prod, app and release rules, and where users go while clusters are drained.

    The placement and the release plan are only worked out once every Prod and segment
    reference resolves; the reference problems are reported above.
    """
    problems = []
    for name in sorted(duplicates(p.lower() for p in config.prods)):
        clash = sorted(p for p in config.prods if p.lower() == name)
        problems.append(
            f"{PROJECT}:prods: {' and '.join(clash)} differ only in case; their Kubernetes "
            f"namespaces (prod-{name}) would clash"
        )
    if config.app is not None:
        if ":" in config.app.image.rsplit("/", 1)[-1]:
            problems.append(
                f"{PROJECT}:app.image: give the image without a tag ({config.app.image!r}); "
                "each Prod's tag is the release version of its wave"
            )
        if int(config.app.max_surge.rstrip("%")) == 0:
            problems.append(
                f"{PROJECT}:app.maxSurge: must be above 0: rollouts never take a Pod away "
                "before its replacement is ready (maxUnavailable is 0), so they need room to surge"
            )
    if config.release is not None:
        for key, version in (
            ("version", config.release.version),
            ("previousVersion", config.release.previous_version),
        ):
            digest = version[len(version_tag(version)) :]
            if not _LABEL_VALUE.match(version_tag(version)) or not _DIGEST.match(digest):
                problems.append(
                    f"{PROJECT}:release.{key}: {version!r} must be an image tag that is also a "
                    "Kubernetes label value (letters, digits, '.', '_', '-'; at most 63; "
                    "starts and ends alphanumeric), optionally pinned by the image's digest "
                    "(2.3.1@sha256:<64 hex digits>)"
                )
    resolved = all(p.cluster in clusters for p in config.prods.values()) and all(
        p in config.prods for s in config.segments for p in s.prods
    )
    if resolved:
        problems.extend(_capacity(config, clusters))
        problems.extend(_placement(config, clusters))
        problems.extend(_release(config))
    return problems


PRIVATE_RANGES = tuple(
    IPv4Network(c) for c in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10")
)


# Octavia's own rules (octavia/common/constants.py VALID_LISTENER_POOL_PROTOCOL_MAP, and
# octavia/api/v2/controllers/health_monitor.py), which it enforces only when the API is called.
LISTENER_POOL_PROTOCOLS: dict[str, frozenset[str]] = {
    "TCP": frozenset({"HTTP", "HTTPS", "PROXY", "PROXYV2", "TCP"}),
    "HTTP": frozenset({"HTTP", "PROXY", "PROXYV2"}),
    "HTTPS": frozenset({"HTTPS", "PROXY", "PROXYV2", "TCP"}),
    "TERMINATED_HTTPS": frozenset({"HTTP", "PROXY", "PROXYV2"}),
    "UDP": frozenset({"UDP"}),
}
UDP_POOL_MONITORS = frozenset({"UDP-CONNECT", "TCP", "HTTP"})
UDP_CONNECT_MIN_DELAY = 3  # [api_settings] udp_connect_min_interval_health_monitor default
HTTP_MONITORS = frozenset({"HTTP", "HTTPS"})


def _check_octavia_shapes(listener: ListenerSpec, path: str) -> list[str]:
    """What Octavia's API refuses for one listener, its pool and monitor, said at config time."""
    problems = []
    pool = listener.pool
    if pool.protocol not in LISTENER_POOL_PROTOCOLS[listener.protocol]:
        allowed = ", ".join(sorted(LISTENER_POOL_PROTOCOLS[listener.protocol]))
        problems.append(
            f"{path}.pool.protocol: Octavia refuses a {pool.protocol} pool behind a "
            f"{listener.protocol} listener (allowed: {allowed})"
        )
    tls = listener.default_tls_container_ref
    if listener.protocol == "TERMINATED_HTTPS" and tls is None:
        problems.append(
            f"{path}.defaultTlsContainerRef: a TERMINATED_HTTPS listener needs the Barbican "
            "container of its certificate (Octavia refuses it without one)"
        )
    if listener.protocol != "TERMINATED_HTTPS" and tls is not None:
        problems.append(
            f"{path}.defaultTlsContainerRef: only a TERMINATED_HTTPS listener takes a "
            f"certificate; this one is {listener.protocol}"
        )
    monitor = pool.health_monitor
    if monitor is not None:
        where = f"{path}.pool.healthMonitor"
        if pool.protocol == "UDP" and monitor.type not in UDP_POOL_MONITORS:
            problems.append(
                f"{where}.type: a UDP pool takes a {', '.join(sorted(UDP_POOL_MONITORS))} "
                f"monitor, not {monitor.type}"
            )
        if pool.protocol != "UDP" and monitor.type == "UDP-CONNECT":
            problems.append(f"{where}.type: UDP-CONNECT monitors only UDP pools")
        if monitor.type == "UDP-CONNECT" and monitor.delay < UDP_CONNECT_MIN_DELAY:
            problems.append(
                f"{where}.delay: a UDP-CONNECT monitor needs a delay of at least "
                f"{UDP_CONNECT_MIN_DELAY} s"
            )
        for key, value in (
            ("urlPath", monitor.url_path),
            ("expectedCodes", monitor.expected_codes),
        ):
            if value is not None and monitor.type not in HTTP_MONITORS:
                problems.append(f"{where}.{key}: only HTTP and HTTPS monitors take it")
    for (address, port), count in Counter((str(m.address), m.port) for m in pool.members).items():
        if count > 1:
            problems.append(
                f"{path}.pool.members: {address}:{port} is listed {count} times; Octavia keeps "
                "one member per address and port"
            )
    return problems


def _check_lb(config: StackConfig, lb: LoadBalancerSpec, path: str) -> list[str]:
    problems = []
    address = lb.dns.octavia_address
    if lb.dns.octavia_vip == "public" and address is None:
        problems.append(
            f"{path}.dns.octaviaAddress: required with octaviaVip: public. The VIP itself is a "
            "tenant address that Route53 cannot reach or check; give its floating IP, or set "
            "octaviaVip: private with an octaviaAlarm"
        )
    if lb.dns.octavia_vip == "public" and address and any(address in r for r in PRIVATE_RANGES):
        problems.append(
            f"{path}.dns.octaviaAddress: {address} is private, so Route53's checkers cannot "
            "reach it; give the public (floating) address, or set octaviaVip: private with an "
            "octaviaAlarm"
        )
    if lb.create is not None:
        listeners = lb.create.listeners
        for name in sorted(duplicates(li.name for li in listeners)):
            problems.append(f"{path}.create.listeners: duplicate name {name!r}")
        for (protocol, port), count in Counter((_l4(li), li.port) for li in listeners).items():
            if count > 1:
                problems.append(
                    f"{path}.create.listeners: port clash, {count} listeners on {protocol} {port}"
                )
        problems.extend(_check_udp(lb, path))
        problems.extend(_check_management_ports(lb, path))
        for i, listener in enumerate(listeners):
            problems.extend(_check_octavia_shapes(listener, f"{path}.create.listeners[{i}]"))
            dx_cidrs = config.on_prem.dx_cidrs if config.on_prem else ()
            for j, member in enumerate(listener.pool.members):
                if dx_cidrs and not any(member.address in cidr for cidr in dx_cidrs):
                    problems.append(
                        f"{path}.create.listeners[{i}].pool.members[{j}].address: {member.address} "
                        "is outside onPrem.dxCidrs, so the NLB cannot reach it over Direct Connect"
                    )
    return problems


UDP_WITHOUT_RETURN_PATH = (
    "the NLB twin would carry UDP, and NLB always preserves the client IP for UDP target "
    "groups: members answer the client's own address directly, so replies bypass Direct "
    "Connect and the NLB and are dropped. Set nlb.udpRepliesOverDx: true once the on-prem "
    "network routes replies for client addresses back over Direct Connect, or serve this "
    "listener from Octavia only"
)


def _check_udp(lb: LoadBalancerSpec, path: str) -> list[str]:
    """UDP on the twin needs a return path; TCP and UDP on one port need the same members."""
    assert lb.create is not None
    problems = []
    listeners = lb.create.listeners
    for i, listener in enumerate(listeners):
        if listener.protocol == "UDP" and not lb.nlb.udp_replies_over_dx:
            problems.append(f"{path}.create.listeners[{i}].protocol: {UDP_WITHOUT_RETURN_PATH}")
    by_port: dict[int, list[int]] = {}
    for i, listener in enumerate(listeners):
        by_port.setdefault(listener.port, []).append(i)
    for port, indices in sorted(by_port.items()):
        if len(indices) != 2:
            continue
        tcp, udp = sorted(indices, key=lambda i: _l4(listeners[i]))
        members = [
            {(str(m.address), m.port) for m in listeners[i].pool.members} for i in (tcp, udp)
        ]
        if members[0] != members[1]:
            only = ", ".join(f"{a}:{p}" for a, p in sorted(members[0] ^ members[1]))
            problems.append(
                f"{path}.create.listeners[{udp}].pool.members: port {port} is one TCP_UDP target "
                "group on the NLB, which sends both TCP and UDP to every target, so both pools "
                f"need the same members; in one pool only: {only}"
            )
    return problems


def _check_management_ports(lb: LoadBalancerSpec, path: str) -> list[str]:
    """No twin carries a management port, in front of its members or on them."""
    assert lb.create is not None
    problems = []
    for i, listener in enumerate(lb.create.listeners):
        where = f"{path}.create.listeners[{i}]"
        ports = [(f"{where}.port", listener.port)]
        ports += [
            (f"{where}.pool.members[{j}].port", m.port) for j, m in enumerate(listener.pool.members)
        ]
        for key, port in ports:
            named = management_port(port)
            if named:
                problems.append(
                    f"{key}: {named} is a management port, and load balancer {lb.name} would "
                    "put it behind its NLB twin; serve it from an Octavia LB outside "
                    "hybrid-infra:loadBalancers, reached over Direct Connect"
                )
    return problems


def _check_discovery(config: StackConfig) -> list[str]:
    """Discovered twins are internal; a public one is allowed per LB (`allowPublic`)."""
    if config.discovery is None or config.discovery.defaults.nlb.scheme == "internal":
        return []
    return [
        f"{PROJECT}:discovery.defaults.nlb.scheme: a tag would put every tagged LB on the "
        "internet; discovered twins are internal, and an LB's team asks for a public one with "
        "hybrid-infra/scheme=internet-facing once its id is in hybrid-infra:discovery.allowPublic"
    ]


def _l4(listener: ListenerSpec) -> str:
    """The transport a listener occupies; HTTP-family listeners all sit on TCP."""
    return "UDP" if listener.protocol == "UDP" else "TCP"


def _capacity(config: StackConfig, clusters: Mapping[str, FleetCluster]) -> list[str]:
    """With nothing drained, every Prod must hold the segments configured on it."""
    nominal = place(config.prods, config.segments)
    problems = []
    for name, prod in config.prods.items():
        if nominal.load[name] > prod.capacity:
            served = ", ".join(s.name for s in config.segments if name in s.prods)
            problems.append(
                f"{PROJECT}:prods.{name}.capacity: {prod.capacity} is below the "
                f"{nominal.load[name]} users of the segments on it ({served}); a Prod of a "
                "redundant pair must carry its segment alone when the other fails"
            )
    for name, cluster in clusters.items():
        on_it = sorted(n for n, p in config.prods.items() if p.cluster == name)
        total = sum(config.prods[n].capacity for n in on_it)
        if total > cluster.spec.capacity:
            problems.append(
                f"{PROJECT}:clusters.{cluster.configured_as}.capacity: "
                f"{cluster.spec.capacity} users, but the Prods on {name} "
                f"({', '.join(on_it)}) are sized for {total}; raise the cluster's capacity "
                "(and its nodes) or move a Prod"
            )
    return problems


def _placement(config: StackConfig, clusters: Mapping[str, FleetCluster]) -> list[str]:
    """One line per drained cluster whose segments cannot go anywhere else."""
    placement = placement_for(config)
    if not placement.stranded:
        return []
    by_cluster: dict[str, list[Stranded]] = {}
    for stranded in placement.stranded:
        for cluster in sorted({clusters[c].configured_as for c in stranded.clusters}):
            by_cluster.setdefault(cluster, []).append(stranded)
    best_prod = roomiest(config.prods, placement.load, placement.drained, 0)
    best = (
        f"the most spare room is {spare(config.prods, placement.load, best_prod)} users on "
        f"{best_prod}"
        if best_prod is not None
        else "no Prod on a cluster that is not drained takes users"
    )
    problems = []
    for cluster, segments in sorted(by_cluster.items()):
        listed = ", ".join(f"{s.segment} ({s.users} users)" for s in segments)
        problems.append(
            f"{PROJECT}:clusters.{cluster}.drained: cannot re-place segment(s) {listed}: "
            "no Prod on a cluster that is not drained has that much spare capacity "
            f"({best}); raise a Prod's capacity, add a Prod, or undrain {cluster}"
        )
    return problems


def _check_monitoring(config: StackConfig, clusters: Mapping[str, FleetCluster]) -> list[str]:
    """A cluster that hosts Prods says it runs the Prometheus operator.

    Every Prod ships a PrometheusRule and a PodMonitor, and the wave gate reads their alerts
    and samples. Without the operator's CRDs the kubernetes provider refuses to create them
    ("the apiVersion for this resource does not exist"), half-way through an `up`; saying so
    here stops the run before anything is registered.
    """
    hosted: dict[str, list[str]] = {}
    for name, prod in sorted(config.prods.items()):
        cluster = clusters.get(prod.cluster)
        if cluster is not None and cluster.spec.monitoring != "prometheus-operator":
            hosted.setdefault(prod.cluster, []).append(name)
    problems = []
    for name, prods in hosted.items():
        cluster = clusters[name]
        where = name if cluster.twin_of is None else f"{name} (the twin of {cluster.twin_of})"
        problems.append(
            f"{PROJECT}:clusters.{cluster.configured_as}.monitoring: {where} hosts Prod(s) "
            f"{', '.join(prods)}, and each ships alert rules and a PodMonitor "
            "(monitoring.coreos.com/v1) that the wave gate reads; install the Prometheus "
            f"operator on {name} and set monitoring: prometheus-operator "
            f"(got {cluster.spec.monitoring})"
        )
    return problems


def _release(config: StackConfig) -> list[str]:
    """Release rules that need the plan: the wave exists, and users get only verified versions."""
    if config.release is None or not config.prods:
        return []
    plan = release_plan(config)
    path = f"{PROJECT}:release"
    problems = []
    if plan.current > plan.last:
        problems.append(
            f"{path}.wave: {plan.current} is past the last wave ({plan.last}); "
            f"the plan is {describe_waves(plan)}"
        )
    if plan.current > plan.test_waves and not plan.verified:
        problems.append(
            f"{path}.verified: wave {plan.current} reaches users, but version "
            f"{plan.version} is not verified; verify it on the test Prod(s) and set "
            "verified: true, or set wave back"
        )
    return problems


def _gke(cluster_key: str, spec: GkeClusterSpec) -> list[str]:
    """Config mistakes the config model does not catch, with their key paths."""
    path = f"{PROJECT}:clusters.{cluster_key}"
    problems = []
    for what, value in (
        ("cluster", gke_name(cluster_key)),
        ("pool", node_pool_name(cluster_key, spec)),
    ):
        if not GKE_NAME.match(value):
            problems.append(
                f"{path}: the GKE {what} name would be {value!r}; GKE needs 1-40 lowercase "
                "letters, digits or hyphens starting with a letter (shorten the cluster name "
                "or the deploy id)"
            )
    if not spec.authorized_networks:
        problems.append(
            f"{path}.authorizedNetworks: the control plane admits only these networks and none "
            "is listed; give the on-prem egress ranges that run `pulumi up` and kubectl"
        )
    account = node_service_account_id(cluster_key)
    if not SERVICE_ACCOUNT_ID.match(account):
        problems.append(
            f"{path}: the nodes' service account would be {account!r}; IAM needs 6-30 lowercase "
            "letters, digits or hyphens starting with a letter (shorten the cluster name)"
        )
    bg = spec.blue_green
    if bg is not None and bg.batch_percentage is not None and bg.batch_node_count is not None:
        problems.append(f"{path}.blueGreen: give batchPercentage or batchNodeCount, not both")
    return problems
