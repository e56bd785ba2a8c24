"""How an Octavia listener/pool/monitor becomes an NLB listener/target group/health check.

Pure tables and one function over plain data, so both the create mode (config) and the adopt mode
(a live Octavia read) map the same way, and the tables can be tested on their own.

- The NLB is L4 only: HTTP, HTTPS and TERMINATED_HTTPS listeners become TCP passthrough on the
  same port. For TERMINATED_HTTPS this means the NLB forwards TLS to the members' port, so it
  only works where the members also speak TLS there.
- A TCP and a UDP listener on the same port become one TCP_UDP listener and target group.
- PROXY/PROXYV2 pools turn on proxy protocol v2 on the target group (TCP only).
- NLB health checks speak TCP, HTTP or HTTPS: PING, TLS-HELLO and UDP-CONNECT monitors become TCP
  checks on the traffic port, so UDP members must also accept TCP there.
- NLB thresholds run 2..10 and intervals 5..300 s; Octavia values outside are clamped.
- A listener on a management port, or whose members listen on one, is never mirrored
  (`model.management_ports`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from model.management_ports import management_port
from model.octavia import Monitor

LISTENER_TRANSPORT = {
    "TCP": "TCP",
    "UDP": "UDP",
    "HTTP": "TCP",
    "HTTPS": "TCP",
    "TERMINATED_HTTPS": "TCP",
}
POOL_TRANSPORT = {
    "TCP": "TCP",
    "HTTP": "TCP",
    "HTTPS": "TCP",
    "PROXY": "TCP",
    "PROXYV2": "TCP",
    "UDP": "UDP",
}
PROXY_POOLS = frozenset({"PROXY", "PROXYV2"})
UDP_TARGET_GROUPS = frozenset({"UDP", "TCP_UDP"})
HEALTH_CHECK_PROTOCOL = {
    "TCP": "TCP",
    "HTTP": "HTTP",
    "HTTPS": "HTTPS",
    "PING": "TCP",
    "TLS-HELLO": "TCP",
    "UDP-CONNECT": "TCP",
}


class MappingError(ValueError):
    """An Octavia shape the NLB cannot mirror."""


@dataclass(frozen=True, slots=True)
class OctaviaListener:
    """One Octavia listener with its default pool, whatever mode it came from."""

    name: str
    protocol: str
    port: int
    pool_key: str
    pool_protocol: str
    monitor: Monitor | None = None
    member_ports: tuple[int, ...] = ()
    """The ports its pool's members listen on."""


@dataclass(frozen=True, slots=True)
class HealthCheck:
    protocol: str
    interval: int
    timeout: int
    healthy_threshold: int
    unhealthy_threshold: int
    path: str | None = None
    matcher: str | None = None


@dataclass(frozen=True, slots=True)
class NlbListener:
    """One NLB listener and its target group, fed by one or two Octavia pools."""

    name: str
    port: int
    protocol: str
    proxy_protocol_v2: bool
    health_check: HealthCheck | None
    pool_keys: tuple[str, ...]


def map_health_check(monitor: Monitor) -> HealthCheck:
    protocol = HEALTH_CHECK_PROTOCOL.get(monitor.type)
    if protocol is None:
        raise MappingError(
            f"health monitor type {monitor.type} has no NLB equivalent "
            f"(supported: {', '.join(HEALTH_CHECK_PROTOCOL)})"
        )
    interval = _clamp(monitor.delay, 5, 300)
    http = protocol in ("HTTP", "HTTPS")
    return HealthCheck(
        protocol=protocol,
        interval=interval,
        timeout=min(_clamp(monitor.timeout, 2, 120), interval),
        healthy_threshold=_clamp(monitor.max_retries, 2, 10),
        unhealthy_threshold=_clamp(monitor.max_retries_down, 2, 10),
        path=(monitor.url_path or "/") if http else None,
        matcher=(monitor.expected_codes or "200-399") if http else None,
    )


def without_management_ports(
    listeners: Sequence[OctaviaListener],
) -> tuple[list[OctaviaListener], list[str]]:
    """The listeners a twin may carry, and why each other one is left out.

    A listener on a management port, or in front of members that listen on one (443 → 6443 is
    the Kubernetes API all the same), would put a control plane behind the twin.
    """
    kept, refused = [], []
    for listener in listeners:
        port = management_port(listener.port)
        behind = [p for p in map(management_port, sorted(set(listener.member_ports))) if p]
        if port is None and not behind:
            kept.append(listener)
            continue
        where = f"on {port}" if port else f"in front of members on {', '.join(behind)}"
        refused.append(f"listener {listener.name} {where}: a twin never carries a management port")
    return kept, refused


def map_listeners(listeners: Sequence[OctaviaListener]) -> list[NlbListener]:
    """Group Octavia listeners by port and map each group to one NLB listener."""
    by_port: dict[int, list[OctaviaListener]] = defaultdict(list)
    for listener in listeners:
        by_port[listener.port].append(listener)
    return [_map_port(port, group) for port, group in sorted(by_port.items())]


def _map_port(port: int, group: list[OctaviaListener]) -> NlbListener:
    for listener in group:
        _check_supported(listener)
    transports = sorted({LISTENER_TRANSPORT[li.protocol] for li in group})
    if len(group) != len(transports):
        names = ", ".join(li.name for li in group)
        raise MappingError(f"listeners {names} share port {port} on the same transport")
    proxy = any(li.pool_protocol in PROXY_POOLS for li in group)
    protocol = "TCP_UDP" if transports == ["TCP", "UDP"] else transports[0]
    if proxy and protocol != "TCP":
        raise MappingError(
            f"port {port}: proxy protocol needs a TCP-only NLB listener, but {protocol} is needed"
        )
    tcp_first = sorted(group, key=lambda li: LISTENER_TRANSPORT[li.protocol])
    monitored = [li.monitor for li in tcp_first if li.monitor is not None]
    return NlbListener(
        name=group[0].name if len(group) == 1 else f"port-{port}",
        port=port,
        protocol=protocol,
        proxy_protocol_v2=proxy,
        health_check=map_health_check(monitored[0]) if monitored else None,
        pool_keys=tuple(li.pool_key for li in tcp_first),
    )


def _check_supported(listener: OctaviaListener) -> None:
    transport = LISTENER_TRANSPORT.get(listener.protocol)
    if transport is None:
        raise MappingError(
            f"listener {listener.name}: protocol {listener.protocol} has no NLB equivalent "
            f"(supported: {', '.join(LISTENER_TRANSPORT)})"
        )
    pool_transport = POOL_TRANSPORT.get(listener.pool_protocol)
    if pool_transport is None:
        raise MappingError(
            f"listener {listener.name}: pool protocol {listener.pool_protocol} has no NLB "
            f"equivalent (supported: {', '.join(POOL_TRANSPORT)})"
        )
    if pool_transport != transport:
        raise MappingError(
            f"listener {listener.name}: a {listener.protocol} listener cannot feed a "
            f"{listener.pool_protocol} pool"
        )


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))
