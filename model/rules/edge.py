"""The edge proxy: where requests with no segment go, who may choose a segment, and how
proxies reach Prods on other clusters (by address, over TLS when `edge.tls` is set)."""

from __future__ import annotations

from datetime import date
from ipaddress import ip_address

from model.config import Edge, StackConfig, did_you_mean
from model.service_exposure import reached_from_other_clusters
from model.stackfile import PROJECT


def problems(config: StackConfig, today: date) -> list[str]:
    return _edge(config)


def _edge(config: StackConfig) -> list[str]:
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
