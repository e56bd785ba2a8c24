"""The whole hybrid platform of one stack, assembled from the typed config."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_openstack as openstack

from components import last_up, octavia_catalog
from components.clusters.fleet import ClusterFleet, ClusterFleetArgs
from components.credentials import OpenStackPassword
from components.dns import effective_weights
from components.edge_proxy import LABELS as EDGE_LABELS
from components.hybrid_lb import HybridLoadBalancer, HybridLoadBalancerArgs
from components.prod import APP_NAME
from components.prod_fleet import EDGE_NAMESPACE, ProdFleet, ProdFleetArgs, hosting_clusters
from model import discovery, fleet
from model.config import LoadBalancerSpec, StackConfig, required
from providers.octavia_nlb_sync import octavia


@dataclass(frozen=True)
class PlatformArgs:
    config: StackConfig
    """Parsed and checked whole (`components.stack_config.load`) before anything is registered."""


class Platform(pulumi.ComponentResource):
    """Reads like the architecture diagram: providers, load balancers, clusters, Prods."""

    exports: dict[str, Any]

    def __init__(
        self, name: str, args: PlatformArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("hybrid-infra:platform:Platform", name, None, opts)
        self.config = config = args.config
        # Only the clouds the stack uses: a stack of existing clusters alone loads no aws or
        # openstack plugin, so it runs wherever the kubernetes plugin does.
        kinds = {c.kind for c in fleet.clusters(config).values()}
        uses_lbs = bool(config.load_balancers) or config.discovery is not None
        self.cloud_providers: dict[str, pulumi.ProviderResource] = {}
        if uses_lbs or "eks" in kinds:
            self.cloud_providers["aws"] = aws.Provider(
                "aws",
                region=required(config.aws, "aws").region,
                default_tags=aws.ProviderDefaultTagsArgs(tags=dict(config.tags)),
                opts=pulumi.ResourceOptions(parent=self),
            )
        password = OpenStackPassword.from_stack()
        if uses_lbs or "onprem" in kinds:
            self.cloud_providers["openstack"] = openstack.Provider(
                "openstack",
                cloud=required(config.on_prem, "onPrem").cloud,
                password=password.secret,
                opts=pulumi.ResourceOptions(parent=self),
            )
        self.last_up = last_up.LastOutputs()
        self.octavia_reads = octavia_catalog.Reads(
            config.on_prem.cloud if config.on_prem else "", password.plain
        )
        discovered = self._discovered(config)
        self.load_balancers = self._load_balancers(config, discovered, password)
        self.exports = self._exports(config, discovered)
        self.fleet = ClusterFleet(
            "fleet",
            ClusterFleetArgs(config),
            opts=self.protected(providers=self.cloud_providers),
        )
        # Names, kinds and endpoints; the kubeconfigs only as a secret, for `tools.verify`.
        self.exports["clusters"] = self.fleet.summary()
        self.exports["kubeconfigs"] = pulumi.Output.secret(
            {name: handle.kubeconfig for name, handle in self.fleet.by_name.items()}
        )
        # Prods are cattle, built and retired at will, so never protected; config keeps a
        # Prod that still serves a segment from being removed.
        self.prods = ProdFleet(
            "prods",
            ProdFleetArgs(config=config, clusters=self.fleet.by_name),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.exports["releasePlan"] = self.prods.release_plan
        self.exports["routing"] = self.prods.routing
        self.exports.update(_checked(config, self.prods))
        self.register_outputs(self.exports)

    def _load_balancers(
        self,
        config: StackConfig,
        discovered: list[discovery.Discovered],
        password: OpenStackPassword,
    ) -> list[HybridLoadBalancer]:
        """The configured LBs, then the discovered ones, each with its NLB twin and DNS."""
        specs: list[tuple[str, LoadBalancerSpec, discovery.Discovered | None]] = [
            (f"hybrid-infra:loadBalancers[{i}]", lb, None)
            for i, lb in enumerate(config.load_balancers)
        ]
        specs += [(f"hybrid-infra:discovery[{d.loadbalancer_id}]", d.spec, d) for d in discovered]
        return [
            HybridLoadBalancer(
                lb.name,
                HybridLoadBalancerArgs(
                    spec=lb,
                    aws=required(config.aws, "aws"),
                    on_prem=required(config.on_prem, "onPrem"),
                    protect=config.protect,
                    config_path=path,
                    os_password=password,
                    discovered=twin is not None,
                    # Moving a name replaces both records: allowed (allowMoves) means unprotected
                    # for this one `up`; the next one protects the new records again.
                    protect_dns=config.protect and not (twin is not None and twin.moves_dns),
                    last_up=self.last_up,
                    octavia_reads=self.octavia_reads,
                ),
                opts=pulumi.ResourceOptions(parent=self, providers=self.cloud_providers),
            )
            for path, lb, twin in specs
        ]

    def _exports(
        self, config: StackConfig, discovered: list[discovery.Discovered]
    ) -> dict[str, Any]:
        exports: dict[str, Any] = {
            "environment": config.tags["environment"],
            **({"awsRegion": config.aws.region} if config.aws else {}),
            **({"openstackCloud": config.on_prem.cloud} if config.on_prem else {}),
            "loadBalancers": {
                lb._name: {
                    "fqdn": lb.fqdn,
                    "octaviaVip": lb.octavia_vip,
                    "nlbDnsName": lb.nlb_dns_name,
                    "nlbZoneId": lb.nlb_zone_id,
                    "targetGroupArns": lb.target_group_arns,
                    **_lb_checked(lb),
                }
                for lb in self.load_balancers
            },
        }
        # What each adopted LB looked like: the twin's shape while Octavia cannot be read.
        exports["octavia"] = {
            lb.described["id"]: lb.described
            for lb in self.load_balancers
            if lb.described is not None
        }
        if config.discovery is not None:
            exports["discovered"] = {
                d.spec.name: {
                    "loadbalancerId": d.loadbalancer_id,
                    "tags": d.tags,
                    **({"ignoredTags": _ignored(d)} if d.fallbacks else {}),
                }
                for d in discovered
            }
        return exports

    def _discovered(self, config: StackConfig) -> list[discovery.Discovered]:
        """Tagged Octavia LBs (self-service). Each twin the last `up` built keeps what it used
        where its tags are now wrong (`model.discovery`), and all of them stay as they were
        while Octavia cannot list them."""
        if config.discovery is None:
            return []
        tag = config.discovery.tag
        previous = discovery.last_up(self.last_up.get("discovered"))
        try:
            tagged = self.octavia_reads.discover(tag)
        except octavia.OctaviaUnavailable as error:
            # Without the listing every twin would look removed: keep the last up's instead.
            pulumi.log.warn(
                f"hybrid-infra:discovery: cannot list the LBs tagged {tag} ({error}); the "
                f"{len(previous)} twin(s) of the last up are kept as they were, none is added "
                "or removed until Octavia answers"
            )
            tagged = discovery.as_tagged(previous, tag)
        declared = [str(lb.adopt.loadbalancer_id) for lb in config.load_balancers if lb.adopt]
        found, skipped = discovery.twins(
            tagged,
            config.discovery,
            declared,
            previous=previous,
            taken=discovery.Taken(
                {lb.name for lb in config.load_balancers},
                {lb.dns.fqdn for lb in config.load_balancers},
            ),
            protected=config.protect,
        )
        for skip in skipped:
            pulumi.log.warn(f"hybrid-infra:discovery: {skip.message()}; skipped")
        for twin in found:
            for warning in twin.warnings():
                pulumi.log.warn(f"hybrid-infra:discovery: {warning}")
        pulumi.log.info(f"hybrid-infra:discovery: {len(found)} twin(s) from {tag}")
        return found

    def protected(self, **kwargs: Any) -> pulumi.ResourceOptions:
        """Options for children that carry traffic: protected where the stack asks for it."""
        return pulumi.ResourceOptions(parent=self, protect=self.config.protect, **kwargs)


def _lb_checked(lb: HybridLoadBalancer) -> dict[str, Any]:
    """What `tools.verify` checks an LB against: its records as set, and the sync's bindings
    and owned targets (the planner's inputs), never its password."""
    dns = lb.args.spec.dns
    weights = effective_weights(dns)
    return {
        "dns": {
            "zone": dns.zone,
            "weights": {"octavia": weights.octavia, "nlb": weights.nlb},
            "octaviaAddress": str(dns.octavia_address or "") or lb.octavia_vip,
        },
        "sync": {
            "loadbalancerId": lb.sync.loadbalancer_id,
            "bindings": lb.sync.bindings.apply(
                lambda bindings: [
                    {"poolId": b["pool_id"], "targetGroupArn": b["target_group_arn"]}
                    for b in bindings or ()
                ]
            ),
            "ownsTargetGroups": lb.args.spec.nlb.owns_target_groups,
            "targets": lb.sync.targets,
        },
    }


def _checked(config: StackConfig, prods: ProdFleet) -> dict[str, Any]:
    """Where `tools.verify` finds each Prod, how requests carry a segment, and what the alert
    rules read: nothing secret."""
    if config.app is None:
        return {}
    exports: dict[str, Any] = {
        "prods": {
            name: {"cluster": p.cluster_name, "namespace": p.namespace_name, "deployment": APP_NAME}
            for name, p in prods.prods.items()
        },
        "alerts": config.app.alerts.model_dump(mode="json", by_alias=True),
    }
    if config.edge is not None:
        exports["edge"] = {
            "header": config.edge.header,
            "cookie": config.edge.cookie,
            "defaultSegment": config.edge.default_segment,
            "clusters": list(hosting_clusters(config)),
            # The proxy's objects are named after its app label.
            "service": f"{EDGE_NAMESPACE}/{EDGE_LABELS['app.kubernetes.io/name']}",
        }
    return exports


def _ignored(twin: discovery.Discovered) -> dict[str, str]:
    """Tag → why its value is not used, for teams reading `pulumi stack output discovered`."""
    return {f.key: f.message() for f in twin.fallbacks}
