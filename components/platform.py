"""The whole hybrid platform of one stack, assembled from the typed config."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_openstack as openstack

from components.clusters import ClusterFleet
from components.config import StackConfig
from components.credentials import OpenStackPassword
from components.hybrid_lb import HybridLoadBalancer, HybridLoadBalancerArgs


class Platform(pulumi.ComponentResource):
    """Reads like the architecture diagram: providers, load balancers, clusters, Prods."""

    exports: dict[str, Any]

    def __init__(
        self, name: str, config: StackConfig, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("hybrid-infra:platform:Platform", name, None, opts)
        self.config = config
        self.aws = aws.Provider(
            "aws",
            region=config.aws.region,
            default_tags=aws.ProviderDefaultTagsArgs(tags=dict(config.tags)),
            opts=pulumi.ResourceOptions(parent=self),
        )
        password = OpenStackPassword.from_stack()
        self.openstack = openstack.Provider(
            "openstack",
            cloud=config.on_prem.cloud,
            password=password.secret,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.load_balancers = [
            HybridLoadBalancer(
                lb.name,
                HybridLoadBalancerArgs(
                    spec=lb,
                    aws=config.aws,
                    on_prem=config.on_prem,
                    protect=config.protect,
                    config_path=f"hybrid-infra:loadBalancers[{i}]",
                    os_password=password,
                ),
                opts=pulumi.ResourceOptions(
                    parent=self, providers={"aws": self.aws, "openstack": self.openstack}
                ),
            )
            for i, lb in enumerate(config.load_balancers)
        ]
        self.exports = {
            "environment": config.tags["environment"],
            "awsRegion": config.aws.region,
            "openstackCloud": config.on_prem.cloud,
            "loadBalancers": {
                lb._name: {
                    "fqdn": lb.fqdn,
                    "octaviaVip": lb.octavia_vip,
                    "nlbDnsName": lb.nlb_dns_name,
                    "nlbZoneId": lb.nlb_zone_id,
                    "targetGroupArns": lb.target_group_arns,
                }
                for lb in self.load_balancers
            },
        }
        self.fleet = ClusterFleet(
            "fleet",
            config,
            opts=self.protected(providers={"aws": self.aws, "openstack": self.openstack}),
        )
        # Names, kinds and endpoints only: kubeconfigs stay secret inside the fleet.
        self.exports["clusters"] = self.fleet.summary()
        from components.prod_fleet import ProdFleet, ProdFleetArgs

        # Prods are cattle, built and retired at will, so never protected; config keeps a
        # Prod that still serves a segment from being removed.
        self.prods = ProdFleet(
            "prods",
            ProdFleetArgs(config=config, clusters=self.fleet.by_name),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.exports["releasePlan"] = self.prods.release_plan
        self.exports["routing"] = self.prods.routing
        self.register_outputs(self.exports)

    def protected(self, **kwargs: Any) -> pulumi.ResourceOptions:
        """Options for children that carry traffic: protected where the stack asks for it."""
        return pulumi.ResourceOptions(parent=self, protect=self.config.protect, **kwargs)
