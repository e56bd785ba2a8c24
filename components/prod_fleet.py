"""Every Prod of the stack on its cluster, and the routing table that sends users to them.

The routing table (segment → Prods, each with its endpoint, cluster, weight and version) is
written as JSON to the ConfigMap `hybrid-infra-edge/hybrid-infra-routing` on **every cluster
that hosts a Prod**, drained ones included. Edge proxies run next to the Prods, and they all read
the same document, so no cluster routes by an older table than another; a drained cluster keeps
its copy so that its proxies, too, send users elsewhere. Each endpoint is the Prod's address
inside its own cluster; a proxy on another cluster reaches it through that cluster (the route
names it).
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
from components.edge_proxy import EdgeProxy, EdgeProxyArgs, edge_settings
from components.prod import Prod, ProdArgs, service_endpoint
from model import fleet
from model.config import ConfigError, StackConfig
from model.edge_config import render
from model.placement import Placement, placement_for
from model.release import ReleasePlan, release_plan

EDGE_NAMESPACE = "hybrid-infra-edge"
ROUTING_CONFIGMAP = "hybrid-infra-routing"
ROUTING_KEY = "routing.json"
ROUTING_SCHEMA = 1


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
                    ),
                    opts=pulumi.ResourceOptions(parent=self),
                )

        port = config.app.port if config.app is not None else 0
        self.routing = routing_table(placement, plan, port)
        self.release_plan = plan.to_dict()
        document = json.dumps(self.routing, indent=2, sort_keys=True)
        self.routing_maps = [
            self._publish(args.clusters[cluster], document, config)
            for cluster in hosting_clusters(config)
        ]
        self.register_outputs({"routing": self.routing, "releasePlan": self.release_plan})

    def _publish(
        self, cluster: ClusterHandle, document: str, config: StackConfig
    ) -> k8s.core.v1.ConfigMap:
        """The routing ConfigMap and the edge proxy on one cluster.

        Both wait for every Prod: the table may point users at a Prod that has just been
        created or rolled, and they must only arrive once its Pods are ready.
        """
        on_cluster = pulumi.ResourceOptions(parent=self, provider=cluster.provider)
        namespace = k8s.core.v1.Namespace(
            f"{cluster.name}-edge",
            metadata=ObjectMetaArgs(
                name=EDGE_NAMESPACE, labels={"app.kubernetes.io/part-of": "hybrid-infra"}
            ),
            opts=on_cluster,
        )
        routing = k8s.core.v1.ConfigMap(
            f"{cluster.name}-routing",
            metadata=ObjectMetaArgs(
                name=ROUTING_CONFIGMAP,
                namespace=namespace.metadata.name,
                labels={"app.kubernetes.io/part-of": "hybrid-infra"},
            ),
            data={ROUTING_KEY: document},
            opts=pulumi.ResourceOptions.merge(
                on_cluster,
                pulumi.ResourceOptions(
                    depends_on=[r for p in self.prods.values() for r in p.serving]
                ),
            ),
        )
        if config.edge is not None:
            EdgeProxy(
                f"{cluster.name}-edge-proxy",
                EdgeProxyArgs(
                    namespace=namespace.metadata.name,
                    edge=config.edge,
                    config=render(json.loads(document), edge_settings(config.edge, cluster.name)),
                ),
                opts=pulumi.ResourceOptions.merge(
                    on_cluster,
                    pulumi.ResourceOptions(
                        depends_on=[r for p in self.prods.values() for r in p.serving]
                    ),
                ),
            )
        return routing


def hosting_clusters(config: StackConfig) -> tuple[str, ...]:
    """Clusters with at least one Prod, in the fleet's order."""
    used = {p.cluster for p in config.prods.values()}
    return tuple(c for c in fleet.clusters(config) if c in used)


def routing_table(placement: Placement, plan: ReleasePlan, port: int) -> dict[str, Any]:
    """Segment → weighted Prod endpoints: what an edge proxy needs, and no secret."""
    versions = {name: p.version for name, p in plan.prods.items()}
    warming = set(plan.warming())
    return {
        "schema": ROUTING_SCHEMA,
        "drainedClusters": sorted(placement.drained),
        "segments": {
            s.segment: {
                "users": s.users,
                "configuredProds": list(s.configured),
                "moved": s.moved,
                "routes": [
                    {
                        "prod": r.prod,
                        "cluster": r.cluster,
                        "endpoint": service_endpoint(r.prod, port),
                        "weight": r.weight,
                        "version": versions.get(r.prod),
                        "warming": r.prod in warming,
                    }
                    for r in s.routes
                ],
            }
            for s in placement.segments
        },
    }
