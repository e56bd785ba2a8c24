"""Routing: through each edge proxy, each segment reaches a Prod that the routing table names.

Per edge proxy (one per cluster that hosts Prods) and segment, one request carrying the
segment (in `edge.header`, or `edge.cookie`) to the app's health path. The proxy names the Prod
that answered in the `X-Hybrid-Prod` response header (the server HAProxy chose; the Prod's app
is the user's own image and says nothing of itself). A request with a segment nobody has must
reach the default segment's Prods. The proxy's address is its Service's load balancer (read
from the cluster), or `--edge CLUSTER=URL`.

The proxy believes the segment only from `edge.trustedSources`: run verify from such a source,
or every segment lands on the default one (the detail then says so).
"""

from __future__ import annotations

import http.client
import secrets
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial

from model.edge_config import PROD_HEADER
from tools.verify import clusters
from tools.verify.context import Context
from tools.verify.outputs import Edge, Segment
from tools.verify.report import Row, fail, ok, skip
from tools.verify.runner import Probe, Unchecked

CHECK = "routing"
"""Set by the edge proxy on every answer: the name of the server (Prod) it chose."""
NO_SERVER = "<NOSRV>"
"""What HAProxy names when no server took the request."""
UNKNOWN = "(unknown segment)"


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    prod: str | None


def probes(ctx: Context) -> list[Probe]:
    out = ctx.outputs
    if out.edge is None or not out.segments:
        return []
    edge = out.edge
    default = next((s for s in out.segments if s.name == edge.default_segment), None)
    found = []
    for cluster in edge.clusters:
        if cluster in out.drained:
            found.append(Probe(CHECK, f"edge {cluster}", partial(_drained, cluster)))
            continue
        found += [
            Probe(CHECK, f"{cluster} {s.name}", partial(check_route, ctx, edge, cluster, s.name, s))
            for s in out.segments
        ]
        if default is not None:
            unknown = f"hybrid-infra-verify-{secrets.token_hex(4)}"
            found.append(
                Probe(
                    CHECK,
                    f"{cluster} {UNKNOWN}",
                    partial(check_route, ctx, edge, cluster, unknown, default),
                )
            )
    return found


def _drained(cluster: str) -> list[Row]:
    return [
        skip(CHECK, f"edge {cluster}", "drained cluster: its proxy keeps its last configuration")
    ]


# --- judging (pure) -------------------------------------------------------------------------


def judge_route(subject: str, expected: Segment, default: Segment | None, answer: Answer) -> Row:
    """`expected` is the segment whose Prods must answer (the default one for an unknown
    segment)."""
    prod = answer.prod
    names = ", ".join(expected.prods)
    if not prod or prod == NO_SERVER:
        if answer.status and prod is None:
            return fail(
                CHECK,
                subject,
                f"HTTP {answer.status} without {PROD_HEADER}: the answer does not say which "
                "Prod served it (is this the edge proxy, at its current configuration?)",
            )
        return fail(CHECK, subject, f"no Prod answered (HTTP {answer.status}); routes: {names}")
    if prod in expected.prods:
        return ok(CHECK, subject, f"reached {prod} (routes: {names}), HTTP {answer.status}")
    if prod in expected.fallbacks:
        return fail(
            CHECK,
            subject,
            f"reached the fallback {prod}: none of its Prods ({names}) is up at this proxy",
        )
    if default is not None and default is not expected and prod in default.prods:
        return fail(
            CHECK,
            subject,
            f"reached {prod}, a Prod of the default segment {default.name}: the proxy did not "
            f"believe the segment; run verify from a source in edge.trustedSources (routes: "
            f"{names})",
        )
    return fail(CHECK, subject, f"reached {prod}, but the routing table names {names}")


# --- reading --------------------------------------------------------------------------------


def check_route(
    ctx: Context, edge: Edge, cluster: str, segment: str, expected: Segment
) -> list[Row]:
    """`segment` is what the request carries; `expected` the segment whose Prods must answer."""
    base = ctx.shared.get(("edge", cluster), partial(edge_url, ctx, edge, cluster))
    shown = segment if segment == expected.name else UNKNOWN
    default = next((s for s in ctx.outputs.segments if s.name == edge.default_segment), None)
    answer = ask(ctx, cluster, base, _carrying(edge, segment))
    return [judge_route(f"{cluster} {shown}", expected, default, answer)]


def _carrying(edge: Edge, segment: str) -> Mapping[str, str]:
    if edge.cookie:
        return {"Cookie": f"{edge.cookie}={segment}"}
    return {edge.header: segment}


def edge_url(ctx: Context, edge: Edge, cluster: str) -> str:
    """Where this machine reaches the cluster's edge proxy."""
    if cluster in ctx.edges:
        return ctx.edges[cluster].rstrip("/")
    namespace, _, name = edge.service.partition("/")
    found = ctx.outputs.cluster(cluster)
    if found is None:
        raise Unchecked(f"cluster {cluster} is not in the `clusters` output", f"edge {cluster}")
    service = clusters.read(ctx, found, "service", name, namespace)
    if service is None:
        raise Unchecked(f"no Service {edge.service} on cluster {cluster}", f"edge {cluster}")
    ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    host = next((i.get("hostname") or i.get("ip") for i in ingress if i), None)
    if not host:
        raise Unchecked(
            f"Service {edge.service} on cluster {cluster} has no load-balancer address yet; "
            f"give --edge {cluster}=http://HOST:PORT where this machine reaches the proxy",
            f"edge {cluster}",
        )
    ports = (service.get("spec") or {}).get("ports") or [{"port": 80}]
    return f"http://{host}:{ports[0].get('port', 80)}"


def ask(ctx: Context, cluster: str, base: str, headers: Mapping[str, str]) -> Answer:
    """One GET of the app's health path through the proxy, on a new connection."""
    parts = urllib.parse.urlsplit(base)
    path = (parts.path.rstrip("/") or "") + ctx.outputs.health_path

    def exchange() -> Answer:
        kind = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        connection = kind(parts.hostname or "", parts.port, timeout=ctx.timeout)
        try:
            connection.request("GET", path, headers={**headers, "Connection": "close"})
            response = connection.getresponse()
            response.read()
            return Answer(response.status, response.getheader(PROD_HEADER))
        finally:
            connection.close()

    try:
        return ctx.meter.call("edge GET", exchange)
    except (OSError, http.client.HTTPException) as down:
        raise Unchecked(
            f"the edge proxy of {cluster} at {base} does not answer "
            f"({down or type(down).__name__})",
            f"edge {cluster}",
        ) from down
