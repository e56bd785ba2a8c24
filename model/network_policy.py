"""Who may talk to whom: the NetworkPolicies of the Prods' and the edge proxies' namespaces
(pure; the API's wire form).

Every namespace the program creates denies all traffic, in and out (`DEFAULT_DENY`), and then
admits exactly the platform's own paths:

- **users → edge proxy**: its traffic port from anywhere; the proxy's load balancer is the
  fence (`edge.sourceRanges`, and it is internal unless `edge.scheme` says otherwise);
- **edge proxy → Prod**, requests and the proxy's health checks alike: from the proxies on the
  Prod's own cluster (by namespace and Pod labels), and, for a Prod that proxies on other
  clusters route to, from `edge.peerNetworks`: they arrive through its internal load
  balancer, which may rewrite their source, so no Pod label can name them;
- **Prometheus → Prod**: the metrics port, from the Pods `app.metrics.prometheus` names;
- **out**: DNS from both; the proxies reach the Prods' ports only; the Prods reach the
  networks in `app.egress`.

The kubelet's probes need no rule: traffic from a Pod's own node is always allowed (Kubernetes
docs, "Network Policies"). A cluster whose network plugin does not enforce NetworkPolicies
ignores all of this; the policies are still the record of what should be allowed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from ipaddress import IPv4Network, IPv6Network
from typing import Any

from model.config import PrometheusPods

Networks = Iterable[IPv4Network | IPv6Network]

NAMESPACE_NAME = "kubernetes.io/metadata.name"
"""The label the control plane sets on every namespace: its name (Kubernetes 1.22+)."""
DEFAULT_DENY: dict[str, Any] = {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
DNS: dict[str, Any] = {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}
"""To any address: the cluster's resolver may be a Service, a node-local cache or the VPC's."""


def prod_policy(
    *,
    pod_labels: Mapping[str, str],
    port: str,
    metrics_port: str,
    edge_namespace: str,
    edge_labels: Mapping[str, str],
    peer_networks: Networks,
    prometheus: PrometheusPods,
    egress: Networks,
) -> dict[str, Any]:
    """A Prod's Pods: requests from the proxies (`peer_networks` too, when proxies on other
    clusters route to it, else empty), scrapes from Prometheus; out, DNS and `egress`."""
    proxies = [_pods(edge_namespace, edge_labels), *_blocks(peer_networks)]
    scrapers = [_pods(prometheus.namespace, prometheus.pod_labels)]
    out = _blocks(egress)
    return {
        "podSelector": {"matchLabels": dict(pod_labels)},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [
            {"from": proxies, "ports": _tcp([port])},
            {"from": scrapers, "ports": _tcp([metrics_port])},
        ],
        "egress": [DNS, *([{"to": out}] if out else [])],
    }


def edge_policy(
    *,
    pod_labels: Mapping[str, str],
    port: int,
    prod_namespace_label: str,
    prod_labels: Mapping[str, str],
    prod_port: int,
    remote_ports: Iterable[int],
    peer_networks: Networks,
) -> dict[str, Any]:
    """The proxies' Pods: users in on `port`; out, DNS, the Prods on this cluster (namespaces
    that carry `prod_namespace_label`) on `prod_port`, and the other clusters' Prods, in
    `peer_networks` on `remote_ports` (none when every route stays on this cluster)."""
    prods = {
        "namespaceSelector": {
            "matchExpressions": [{"key": prod_namespace_label, "operator": "Exists"}]
        },
        "podSelector": {"matchLabels": dict(prod_labels)},
    }
    remote = _blocks(peer_networks)
    ports = sorted(set(remote_ports))
    return {
        "podSelector": {"matchLabels": dict(pod_labels)},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [{"ports": _tcp([port])}],
        "egress": [
            DNS,
            {"to": [prods], "ports": _tcp([prod_port])},
            # An empty `to` would mean every address: a rule only where there is somewhere to go.
            *([{"to": remote, "ports": _tcp(ports)}] if remote and ports else []),
        ],
    }


def _pods(namespace: str, labels: Mapping[str, str]) -> dict[str, Any]:
    return {
        "namespaceSelector": {"matchLabels": {NAMESPACE_NAME: namespace}},
        "podSelector": {"matchLabels": dict(labels)},
    }


def _blocks(networks: Networks) -> list[dict[str, Any]]:
    return [{"ipBlock": {"cidr": str(network)}} for network in networks]


def _tcp(ports: Iterable[int | str]) -> list[dict[str, Any]]:
    return [{"port": port, "protocol": "TCP"} for port in ports]
