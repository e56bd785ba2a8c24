"""The whole hybrid platform of one stack, assembled from the typed config."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_openstack as openstack

from components.config import StackConfig


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
        self.openstack = openstack.Provider(
            "openstack", cloud=config.on_prem.cloud, opts=pulumi.ResourceOptions(parent=self)
        )
        self.exports = {
            "environment": config.tags["environment"],
            "awsRegion": config.aws.region,
            "openstackCloud": config.on_prem.cloud,
            "loadBalancers": [lb.name for lb in config.load_balancers],
            "clusters": list(config.cluster_names()),
        }
        self.register_outputs(self.exports)

    def protected(self, **kwargs: Any) -> pulumi.ResourceOptions:
        """Options for children that carry traffic: protected where the stack asks for it."""
        return pulumi.ResourceOptions(parent=self, protect=self.config.protect, **kwargs)
