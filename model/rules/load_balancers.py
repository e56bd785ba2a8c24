"""Load balancers and their twins: Octavia's own shapes (stated at config time, since Octavia
enforces them only when its API is called), what an NLB twin can carry, the management ports no
twin carries, and the fence around discovered twins."""

from __future__ import annotations

from collections import Counter
from datetime import date
from ipaddress import IPv4Network

from model.config import ListenerSpec, LoadBalancerSpec, StackConfig, duplicates
from model.management_ports import management_port
from model.stackfile import PROJECT

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

UDP_WITHOUT_RETURN_PATH = (
    "the NLB twin would carry UDP, and NLB always preserves the client IP for UDP target "
    "groups: members answer the client's own address directly, so replies bypass Direct "
    "Connect and the NLB and are dropped. Set nlb.udpRepliesOverDx: true once the on-prem "
    "network routes replies for client addresses back over Direct Connect, or serve this "
    "listener from Octavia only"
)


def problems(config: StackConfig, today: date) -> list[str]:
    """Names and DNS names are unique; each load balancer and the discovery defaults hold."""
    lbs = f"{PROJECT}:loadBalancers"
    found = [
        f"{lbs}: duplicate name {name!r}"
        for name in sorted(duplicates(lb.name for lb in config.load_balancers))
    ]
    found += [
        f"{lbs}: DNS name {fqdn!r} is used by more than one load balancer"
        for fqdn in sorted(duplicates(lb.dns.fqdn for lb in config.load_balancers))
    ]
    for i, lb in enumerate(config.load_balancers):
        found.extend(_load_balancer(config, lb, f"{lbs}[{i}]"))
    found.extend(_discovery(config))
    return found


def _load_balancer(config: StackConfig, lb: LoadBalancerSpec, path: str) -> list[str]:
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
        problems.extend(_udp(lb, path))
        problems.extend(_management_ports(lb, path))
        for i, listener in enumerate(listeners):
            problems.extend(_octavia_shapes(listener, f"{path}.create.listeners[{i}]"))
            dx_cidrs = config.on_prem.dx_cidrs if config.on_prem else ()
            for j, member in enumerate(listener.pool.members):
                if dx_cidrs and not any(member.address in cidr for cidr in dx_cidrs):
                    problems.append(
                        f"{path}.create.listeners[{i}].pool.members[{j}].address: {member.address} "
                        "is outside onPrem.dxCidrs, so the NLB cannot reach it over Direct Connect"
                    )
    return problems


def _octavia_shapes(listener: ListenerSpec, path: str) -> list[str]:
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


def _udp(lb: LoadBalancerSpec, path: str) -> list[str]:
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


def _management_ports(lb: LoadBalancerSpec, path: str) -> list[str]:
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


def _discovery(config: StackConfig) -> list[str]:
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
