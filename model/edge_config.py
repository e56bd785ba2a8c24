"""The edge proxy's HAProxy configuration, rendered from the routing table (pure).

Each request names its user's segment in a request header (`X-Hybrid-Segment` by default). A
header rather than a cookie: the segment is decided upstream (the identity layer or the CDN
knows the user), works for API clients that keep no cookies, and is never stale in a browser.
`EdgeSettings.cookie` selects a cookie instead where the segment lives in one.

- One backend per segment, holding the Prods its routes name, with their weights. A rollback or
  a drain is a new routing table, so a new configuration: HAProxy reloads it without dropping
  connections (master-worker, `-sf`).
- An unknown or missing segment goes to the default segment's Prods, never to an error page.
- Warm-up: a Prod that just took the new version (a route marked `warming`) gets its share
  gradually. HAProxy's `slowstart` only ramps a server that comes *back*: a server that is UP
  when the process starts takes its full share at once, and every configuration change starts
  new processes. So a warming server starts with `init-addr none`: it waits in maintenance for
  the run-time resolver, and leaving maintenance starts the ramp. Only where it shares the
  backend with a steady server: ramping every server of a backend together changes no share.
  It needs a host name (a Service always has one); a server given by IP address starts at once.
- Failover: each segment's fallbacks (where a drain of its cluster would send it, decided by
  placement in advance) are `backup` servers, used only while no primary is up. A refused or
  timed-out connection marks its server down at once (`observe layer4`, `on-error mark-down`)
  and the request is retried on another server (`retry-on`, `redispatch`), so a dead Prod costs
  no request. Only where a backend has somewhere else to go: marking the one server of a
  backend down would turn one lost connection into an error page for everyone.
- Only an idempotent request (RFC 9110: GET, HEAD, OPTIONS, TRACE, PUT, DELETE) is replayed
  after the server may have seen it; any request is retried when the connection failed.
- Health checks ask `healthPath` (from the routing table) with the `Host` the Prod expects:
  the host of the address the proxy reaches it at (its Service name on the same cluster).
- Across clusters, with `ca_file` (`edge.tls`), a Prod is dialled over TLS: its certificate must
  chain to that CA and name the host of its address (`verify required`, `verifyhost`), which is
  also sent as SNI, and the health checks go the same way (`check-ssl`, `check-sni`). A Prod that
  answers with any other certificate fails its checks and its handshakes, so it stays down and
  gets no user. Prods on this cluster stay plaintext: that traffic never leaves the cluster.
- The segment is believed only from `trusted_sources`; from any other source the header (and
  the segment cookie) is removed, so the request goes to the default segment and the Prod never
  sees a forged one. With no trusted source, no one chooses a segment.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network
from typing import Any
from urllib.parse import urlsplit

SEGMENT_HEADER = "X-Hybrid-Segment"
PROD_HEADER = "X-Hybrid-Prod"
"""The response header naming the Prod that answered."""
PORT = 8080
"""Where the proxy listens (its Pod port; the Service maps 80 to it)."""
CA_FILE = "/usr/local/etc/haproxy-tls/ca.crt"
"""Where the proxy's Pod mounts the CA of `edge.tls` (a Secret, components/edge_proxy.py)."""
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
IDEMPOTENT = ("GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE")
"""RFC 9110 9.2.2: the methods a client or proxy may repeat after a failure."""


class EdgeConfigError(ValueError):
    """The routing table cannot be turned into a configuration; the message says why."""


@dataclass(frozen=True, slots=True)
class EdgeSettings:
    default_segment: str
    port: int = PORT
    header: str = SEGMENT_HEADER
    cookie: str | None = None
    slowstart_seconds: int = 60
    cluster: str | None = None
    """The cluster this proxy runs on: Prods on others are reached at `addresses`."""
    addresses: Mapping[str, str] | None = None
    """Prod → `host:port` at which a proxy on another cluster reaches it."""
    trusted_sources: Sequence[IPv4Network | IPv6Network] = ()
    """Where the segment header (or cookie) is believed from; from anywhere else it is removed."""
    ca_file: str | None = None
    """With it, Prods on other clusters are reached over TLS verified against this CA file."""


def render(routing: Mapping[str, Any], settings: EdgeSettings) -> str:
    segments: Mapping[str, Any] = routing["segments"]
    if settings.default_segment not in segments:
        raise EdgeConfigError(
            f"default segment {settings.default_segment!r} is not in the routing table "
            f"(segments: {', '.join(sorted(segments))})"
        )
    lines = [
        "global",
        "    log stdout format raw local0",
        "    maxconn 4096",
        "",
        # Prods' Service names are re-resolved at run time; one that does not resolve yet
        # (a Prod being created, another cluster unreachable) starts DOWN instead of stopping
        # the whole proxy from starting.
        "resolvers cluster",
        "    parse-resolv-conf",
        "    hold valid 10s",
        "",
        "defaults",
        "    mode http",
        "    log global",
        "    option httplog",
        # Every retry may go to another server: the one that failed is already marked down.
        "    option redispatch 1",
        "    retries 3",
        "    retry-on conn-failure empty-response response-timeout",
        "    timeout connect 5s",
        "    timeout client 60s",
        "    timeout server 60s",
        "",
        "frontend edge",
        f"    bind :{settings.port}",
        # The Prod that answered, by name (`%s`, the server chosen): the app is the user's image
        # and cannot say it, and `tools.verify` checks each segment's route with it.
        f"    http-response set-header {PROD_HEADER} %s",
        f"    http-request disable-l7-retry unless {{ method {' '.join(IDEMPOTENT)} }}",
        *_untrusted_segment_removed(settings),
        f"    http-request set-var(txn.segment) {_segment_fetch(settings)}",
    ]
    for name in sorted(segments):
        lines.append(f"    use_backend {_backend(name)} if {{ var(txn.segment) -m str {name} }}")
    lines += [f"    default_backend {_backend(settings.default_segment)}", ""]
    health_path = str(routing["healthPath"])
    for name in sorted(segments):
        lines += _segment_backend(name, segments[name], health_path, settings)
    return "\n".join(lines) + "\n"


def _untrusted_segment_removed(settings: EdgeSettings) -> list[str]:
    """Strip the segment header and cookie from requests that come from no trusted source."""
    lines = []
    unless = ""
    if settings.trusted_sources:
        lines.append(f"    acl trusted_source src {' '.join(map(str, settings.trusted_sources))}")
        unless = " unless trusted_source"
    lines.append(f"    http-request del-header {settings.header}{unless}")
    if settings.cookie:
        # Every `name=value` pair of the segment cookie out of the Cookie header, then what is
        # left tidied; a header with nothing left goes.
        condition = f"if {{ req.cook_cnt({settings.cookie}) gt 0 }}"
        if settings.trusted_sources:
            condition += " !trusted_source"
        strip = f"regsub('(^|;) *{settings.cookie}=[^;]*',,g),regsub('^[; ]+',)"
        lines += [
            f'    http-request set-header Cookie "%[req.fhdr(Cookie),{strip}]" {condition}',
            "    http-request del-header Cookie if { req.fhdr(Cookie) -m len 0 }",
        ]
    return lines


def _segment_fetch(settings: EdgeSettings) -> str:
    return f"req.cook({settings.cookie})" if settings.cookie else f"req.hdr({settings.header})"


def _backend(segment: str) -> str:
    return f"segment_{_UNSAFE.sub('_', segment)}"


def _segment_backend(
    segment: str, table: Mapping[str, Any], health_path: str, settings: EdgeSettings
) -> list[str]:
    routes: list[Mapping[str, Any]] = table["routes"]
    fallbacks: list[Mapping[str, Any]] = table.get("fallbacks", [])
    if not routes:
        raise EdgeConfigError(f"segment {segment!r} has no route: no Prod would serve it")
    servers = [
        (route, *_address(segment, route, settings), backup)
        for routes_of, backup in ((routes, False), (fallbacks, True))
        for route in routes_of
    ]
    hosts = {_name(route): address.rpartition(":")[0] for route, address, *_ in servers}
    defaults = (
        f"    default-server check inter 2s fall 3 rise 2 slowstart {settings.slowstart_seconds}s"
        " resolvers cluster init-addr last,libc,none"
    )
    if len(servers) > 1:
        defaults += " observe layer4 error-limit 1 on-error mark-down"
    lines = [
        f"backend {_backend(segment)}",
        "    balance roundrobin",
        "    option httpchk",
        f"    http-check send meth GET uri {health_path} ver HTTP/1.1 hdr Host {_host_of(hosts)}",
        defaults,
    ]
    steady = any(not route.get("warming") for route in routes)
    for route, address, elsewhere, backup in servers:
        server = f"    server {_name(route)} {address} weight {int(route['weight'])}"
        if elsewhere and settings.ca_file:
            server += _verified_tls(hosts[_name(route)], settings.ca_file)
        if backup:
            server += " backup"
        elif steady and route.get("warming"):
            server += " init-addr none"
        lines.append(server)
    return [*lines, ""]


def _name(route: Mapping[str, Any]) -> str:
    return _UNSAFE.sub("_", str(route["prod"]))


def _address(segment: str, route: Mapping[str, Any], settings: EdgeSettings) -> tuple[str, bool]:
    """Where this proxy reaches the route's Prod (its Service here, `addresses` elsewhere), and
    whether that is on another cluster."""
    prod = str(route["prod"])
    if settings.cluster in (None, route.get("cluster", settings.cluster)):
        return _host_port(route["endpoint"]), False
    address = (settings.addresses or {}).get(prod, "")
    if not address:
        raise EdgeConfigError(
            f"segment {segment!r}: {prod} runs on {route['cluster']}, not on "
            f"{settings.cluster}, and has no address in edge.addresses"
        )
    return address, True


def _verified_tls(host: str, ca_file: str) -> str:
    """TLS to `host`: the certificate must chain to `ca_file` and name `host`, checks too.

    HAProxy matches the certificate against the SNI when one is sent and against `verifyhost`
    otherwise; both are the host, so neither traffic nor checks can accept another name.
    """
    return (
        f" ssl verify required ca-file {ca_file} sni str({host}) verifyhost {host}"
        f" check-ssl check-sni {host}"
    )


def _host_of(hosts: Mapping[str, str]) -> str:
    """The check's Host: per server, by its name, where the backend's servers differ."""
    if len(set(hosts.values())) == 1:
        return next(iter(hosts.values()))
    pairs = "".join(
        f",regsub(^{name.replace('.', '[.]')}$,{host})" for name, host in sorted(hosts.items())
    )
    return f"%[srv_name{pairs}]"


def _host_port(endpoint: str) -> str:
    parts = urlsplit(endpoint)
    if not parts.hostname:
        raise EdgeConfigError(f"endpoint {endpoint!r} has no host")
    return f"{parts.hostname}:{parts.port or 80}"


LIVENESS_PORT = 8081
LIVENESS_PATH = "/livez"


def liveness_frontend(port: int = LIVENESS_PORT, path: str = LIVENESS_PATH) -> str:
    """A frontend that HAProxy answers itself: `200` while its event loop runs.

    The kubelet's liveness probe asks it, never a Prod: a probe through the traffic frontend
    would fail whenever a segment's Prods are down, and restarting every proxy then would turn
    one dead Prod into an outage. `monitor-uri` requests are neither forwarded nor logged.
    """
    return "\n".join(["frontend liveness", f"    bind :{port}", f"    monitor-uri {path}", ""])
