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
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

SEGMENT_HEADER = "X-Hybrid-Segment"
PORT = 8080
"""Where the proxy listens (its Pod port; the Service maps 80 to it)."""
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


class EdgeConfigError(ValueError):
    """The routing table cannot be turned into a configuration; the message says why."""


@dataclass(frozen=True, slots=True)
class EdgeSettings:
    default_segment: str
    port: int = PORT
    header: str = SEGMENT_HEADER
    cookie: str | None = None
    slowstart_seconds: int = 60
    check_path: str = "/healthz"
    cluster: str | None = None
    """The cluster this proxy runs on: Prods on others are reached at `addresses`."""
    addresses: Mapping[str, str] | None = None
    """Prod → `host:port` at which a proxy on another cluster reaches it."""


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
        "    option redispatch",
        "    retries 2",
        "    timeout connect 5s",
        "    timeout client 60s",
        "    timeout server 60s",
        "",
        "frontend edge",
        f"    bind :{settings.port}",
        f"    http-request set-var(txn.segment) {_segment_fetch(settings)}",
    ]
    for name in sorted(segments):
        lines.append(f"    use_backend {_backend(name)} if {{ var(txn.segment) -m str {name} }}")
    lines += [f"    default_backend {_backend(settings.default_segment)}", ""]
    for name in sorted(segments):
        lines += _segment_backend(name, segments[name]["routes"], settings)
    return "\n".join(lines) + "\n"


def _segment_fetch(settings: EdgeSettings) -> str:
    return f"req.cook({settings.cookie})" if settings.cookie else f"req.hdr({settings.header})"


def _backend(segment: str) -> str:
    return f"segment_{_UNSAFE.sub('_', segment)}"


def _segment_backend(
    segment: str, routes: list[Mapping[str, Any]], settings: EdgeSettings
) -> list[str]:
    if not routes:
        raise EdgeConfigError(f"segment {segment!r} has no route: no Prod would serve it")
    lines = [
        f"backend {_backend(segment)}",
        "    balance roundrobin",
        f"    option httpchk GET {settings.check_path}",
        f"    default-server check inter 2s fall 3 rise 2 slowstart {settings.slowstart_seconds}s"
        " resolvers cluster init-addr last,libc,none",
    ]
    steady = any(not route.get("warming") for route in routes)
    for route in routes:
        prod = str(route["prod"])
        address = _host_port(route["endpoint"])
        if settings.cluster not in (None, route.get("cluster", settings.cluster)):
            address = (settings.addresses or {}).get(prod, "")
            if not address:
                raise EdgeConfigError(
                    f"segment {segment!r}: {prod} runs on {route['cluster']}, not on "
                    f"{settings.cluster}, and has no address in edge.addresses"
                )
        server = f"    server {_UNSAFE.sub('_', prod)} {address} weight {int(route['weight'])}"
        lines.append(f"{server} init-addr none" if steady and route.get("warming") else server)
    return [*lines, ""]


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
