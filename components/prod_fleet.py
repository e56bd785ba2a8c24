"""Every Prod of the stack on its cluster, and the routing table that sends users to them.

The routing table (segment → Prods, each with its endpoint, cluster, weight and version) is
written as JSON to an immutable ConfigMap `hybrid-infra-edge/hybrid-infra-routing-<hash of it>`
(label `app.kubernetes.io/component: routing`; named by its content, so a change creates the
new one before the old goes) on every cluster that hosts a Prod, and each of those clusters
runs an edge proxy configured from it. Each endpoint is the Prod's address inside its own
cluster; a proxy on another cluster reaches the Prod through its internal load balancer
(`components.prod`), or at `edge.addresses.<prod>` when given.

**A drained cluster is never written to.** Draining is how users leave a cluster that died, so
`pulumi up` must succeed while that cluster's API does not answer. Every resource on a drained
cluster (its Prods, routing ConfigMap, edge proxy, namespaces, and anything a later change puts
under them) stays registered, because a resource missing from the program is deleted, and is
frozen with `ignore_changes: ["*"]`: the engine keeps each input as the last `up` left it, so no
create, update, replace or delete goes to that cluster's provider; the kubernetes provider
computes such a diff without the cluster. What the program would now write there (the new
routing, a release's new image) is held back and applied by the first `up` after undrain. The
other clusters' routing and proxies change and roll as usual. docs/prods.md ("A dead cluster")
says what an operator sees.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
from pulumi_kubernetes.meta.v1 import ObjectMetaArgs

from components.clusters.fleet import ClusterHandle
from components.edge_proxy import LABELS as EDGE_LABELS
from components.edge_proxy import EdgeProxy, EdgeProxyArgs, content_name, edge_settings
from components.prod import (
    APP_NAME,
    PORT_NAME,
    PROD_LABEL,
    Prod,
    ProdArgs,
    metrics_port_name,
    remote_address,
    selector_labels,
    service_endpoint,
)
from model import fleet
from model.config import App, ConfigError, Edge, StackConfig, required
from model.edge_config import PORT as EDGE_PORT
from model.edge_config import liveness_frontend, render
from model.network_policy import edge_policy, prod_policy
from model.placement import Fallbacks, Placement, Route, fallbacks_for, placement_for
from model.pod_security import psa_labels
from model.release import ReleasePlan, release_plan
from model.service_exposure import reached_from_other_clusters

EDGE_NAMESPACE = "hybrid-infra-edge"
ROUTING_CONFIGMAP = "hybrid-infra-routing"
ROUTING_KEY = "routing.json"
ROUTING_SCHEMA = 1
FROZEN = ["*"]
"""`ignore_changes` for a drained cluster's resources: every input (pulumi/pulumi#13005)."""


@dataclass(frozen=True)
class ProdFleetArgs:
    config: StackConfig
    clusters: Mapping[str, ClusterHandle]
    """The cluster fleet's `by_name`: every configured cluster and twin."""


class ProdFleet(pulumi.ComponentResource):
    """Places the Prods from config, builds each, and publishes where users go."""

    prods: dict[str, Prod]
    routing: dict[str, Any]
    release_plan: dict[str, Any]

    def __init__(
        self, name: str, args: ProdFleetArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("hybrid-infra:prod:ProdFleet", name, None, opts)
        config = args.config
        plan = release_plan(config)
        placement = placement_for(config)
        missing = sorted({p.cluster for p in config.prods.values()} - set(args.clusters))
        if missing:
            raise ConfigError(
                f"hybrid-infra:prods: cluster {c!r} is not in the cluster fleet" for c in missing
            )

        self.drained = fleet.drained_clusters(config)
        remote = reached_from_other_clusters(config)
        self.prods = {}
        if config.app is not None:
            for prod_name, planned in plan.prods.items():
                self.prods[prod_name] = Prod(
                    prod_name,
                    ProdArgs(
                        cluster=args.clusters[planned.cluster],
                        app=config.app,
                        version=planned.version,
                        wave=planned.wave,
                        network_policy=prods_admit(
                            prod_name, config.app, required(config.edge, "edge"), remote
                        ),
                        reached_from_other_clusters=prod_name in remote,
                    ),
                    opts=self._on(planned.cluster),
                )

        fallbacks = fallbacks_for(config)
        for warning in fallbacks.warnings():
            pulumi.log.warn(warning)
        self.routing = routing_table(placement, fallbacks, plan, config.app)
        self.release_plan = plan.to_dict()
        document = json.dumps(self.routing, indent=2, sort_keys=True)
        addresses = self._remote_addresses(config, remote)
        self.routing_maps = [
            self._publish(args.clusters[cluster], document, config, addresses, remote)
            for cluster in hosting_clusters(config)
        ]
        self.register_outputs({"routing": self.routing, "releasePlan": self.release_plan})

    def _on(self, cluster: str, provider: k8s.Provider | None = None) -> pulumi.ResourceOptions:
        """Options for what goes on `cluster`: frozen while it is drained (see the module)."""
        return pulumi.ResourceOptions(
            parent=self,
            provider=provider,
            transformations=[freeze] if cluster in self.drained else None,
        )

    def _remote_addresses(
        self, config: StackConfig, remote: frozenset[str]
    ) -> dict[str, pulumi.Output[str]]:
        """Prod → its internal load balancer's `host:port`, unless `edge.addresses` names one."""
        if config.app is None or config.edge is None:
            return {}
        overridden = set(config.edge.addresses)
        return {
            name: remote_address(name, prod.service, config.app.port)
            for name, prod in self.prods.items()
            if name in remote and name not in overridden
        }

    def _publish(
        self,
        cluster: ClusterHandle,
        document: str,
        config: StackConfig,
        addresses: Mapping[str, pulumi.Output[str]],
        remote: frozenset[str],
    ) -> k8s.core.v1.ConfigMap:
        """The routing ConfigMap and the edge proxy on one cluster.

        Both wait for every Prod: the table may point users at a Prod that has just been
        created or rolled, and they must only arrive once its Pods are ready.
        """
        on_cluster = self._on(cluster.name, cluster.provider)
        namespace = k8s.core.v1.Namespace(
            f"{cluster.name}-edge",
            metadata=ObjectMetaArgs(
                name=EDGE_NAMESPACE,
                labels={"app.kubernetes.io/part-of": "hybrid-infra", **psa_labels()},
            ),
            opts=on_cluster,
        )
        routing = k8s.core.v1.ConfigMap(
            f"{cluster.name}-routing",
            metadata=ObjectMetaArgs(
                name=content_name(f"{ROUTING_CONFIGMAP}-", document),
                namespace=namespace.metadata.name,
                labels={
                    "app.kubernetes.io/part-of": "hybrid-infra",
                    "app.kubernetes.io/component": "routing",
                },
            ),
            data={ROUTING_KEY: document},
            immutable=True,
            opts=pulumi.ResourceOptions.merge(
                on_cluster,
                pulumi.ResourceOptions(
                    depends_on=[r for p in self.prods.values() for r in p.serving]
                ),
            ),
        )
        if config.edge is not None:
            elsewhere = {
                p: a for p, a in addresses.items() if self.prods[p].cluster_name != cluster.name
            }
            EdgeProxy(
                f"{cluster.name}-edge-proxy",
                EdgeProxyArgs(
                    namespace=namespace.metadata.name,
                    edge=config.edge,
                    config=proxy_config(document, config.edge, cluster.name, elsewhere),
                    cluster_kind=cluster.load_balancer_cloud,
                    network_policy=proxies_admit(config, cluster.name, remote),
                ),
                opts=pulumi.ResourceOptions.merge(
                    on_cluster,
                    pulumi.ResourceOptions(
                        depends_on=[r for p in self.prods.values() for r in p.serving]
                    ),
                ),
            )
        return routing


def prods_admit(prod: str, app: App, edge: Edge, remote: frozenset[str]) -> dict[str, Any]:
    """A Prod's NetworkPolicy: its cluster's proxies, and `edge.peerNetworks` where proxies on
    other clusters route to it; Prometheus; out, DNS and `app.egress`."""
    return prod_policy(
        pod_labels=selector_labels(prod),
        port=PORT_NAME,
        metrics_port=metrics_port_name(app),
        edge_namespace=EDGE_NAMESPACE,
        edge_labels=EDGE_LABELS,
        peer_networks=edge.peer_networks if prod in remote else (),
        prometheus=app.metrics.prometheus,
        egress=app.egress,
    )


def proxies_admit(config: StackConfig, cluster: str, remote: frozenset[str]) -> dict[str, Any]:
    """The proxies' NetworkPolicy on `cluster`: users in; out, the Prods of their own cluster,
    and, in `edge.peerNetworks`, the ports of the `remote` Prods on other clusters: the app's
    port of their load balancers, or the one `edge.addresses` gives."""
    edge, app = required(config.edge, "edge"), required(config.app, "app")
    elsewhere = [p for p in sorted(remote) if config.prods[p].cluster != cluster]
    return edge_policy(
        pod_labels=EDGE_LABELS,
        port=EDGE_PORT,
        prod_namespace_label=PROD_LABEL,
        prod_labels={"app.kubernetes.io/name": APP_NAME},
        prod_port=app.port,
        remote_ports=[
            int(edge.addresses[p].rsplit(":", 1)[1]) if p in edge.addresses else app.port
            for p in elsewhere
        ],
        peer_networks=edge.peer_networks,
    )


def proxy_config(
    document: str, edge: Edge, cluster: str, addresses: Mapping[str, pulumi.Output[str]]
) -> pulumi.Output[str]:
    """`cluster`'s haproxy.cfg, once the Prods it reaches elsewhere have their addresses."""

    def rendered(known: Mapping[str, str]) -> str:
        settings = edge_settings(edge, cluster, known)
        return render(json.loads(document), settings) + liveness_frontend()

    if not addresses:
        return pulumi.Output.from_input(rendered({}))
    return pulumi.Output.all(**addresses).apply(rendered)


def freeze(args: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult | None:
    """Keep every input of a resource as the engine last recorded it (components have none)."""
    if not isinstance(args.resource, pulumi.CustomResource):
        return None
    return pulumi.ResourceTransformationResult(
        args.props,
        pulumi.ResourceOptions.merge(args.opts, pulumi.ResourceOptions(ignore_changes=FROZEN)),
    )


def hosting_clusters(config: StackConfig) -> tuple[str, ...]:
    """Clusters with at least one Prod, in the fleet's order."""
    used = {p.cluster for p in config.prods.values()}
    return tuple(c for c in fleet.clusters(config) if c in used)


def routing_table(
    placement: Placement, fallbacks: Fallbacks, plan: ReleasePlan, app: App | None
) -> dict[str, Any]:
    """Segment → weighted Prod endpoints and the fallbacks behind them: what an edge proxy
    needs, and no secret."""
    versions = {name: p.version for name, p in plan.prods.items()}
    warming = set(plan.warming())
    port = app.port if app is not None else 0

    def route(r: Route) -> dict[str, Any]:
        return {
            "prod": r.prod,
            "cluster": r.cluster,
            "endpoint": service_endpoint(r.prod, port),
            "weight": r.weight,
            "version": versions.get(r.prod),
        }

    return {
        "schema": ROUTING_SCHEMA,
        "drainedClusters": sorted(placement.drained),
        **({"healthPath": app.health_path} if app is not None else {}),
        "segments": {
            s.segment: {
                "users": s.users,
                "configuredProds": list(s.configured),
                "moved": s.moved,
                "routes": [{**route(r), "warming": r.prod in warming} for r in s.routes],
                "fallbacks": [route(r) for r in fallbacks.routes.get(s.segment, ())],
            }
            for s in placement.segments
        },
    }
