"""Every Kubernetes cluster of a stack, built: the configured ones plus their EKS twins.

Creating an on-prem cluster brings an EKS cluster with it; `model.fleet` says which clusters
there are, and here each becomes its component. Prods find theirs in `ClusterFleet.by_name`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.clusters.eks import EksCluster, EksClusterArgs
from components.clusters.existing import ExistingCluster, ExistingClusterArgs
from components.clusters.gke import GkeCluster, GkeClusterArgs
from components.clusters.onprem import OnPremCluster, OnPremClusterArgs
from model import fleet
from model.config import (
    EksClusterSpec,
    ExistingClusterSpec,
    OnPremClusterSpec,
    StackConfig,
    required,
)
from model.fleet import ClusterKind, FleetCluster


@dataclass(frozen=True)
class ClusterHandle:
    """What other components need of a cluster: its name, kind, credentials and provider."""

    name: str
    kind: ClusterKind
    kubeconfig: pulumi.Output[str]
    """Always a secret."""
    provider: k8s.Provider
    endpoint: pulumi.Output[str]
    twin_of: str | None = None
    cloud: ClusterKind | None = None
    """Whose load-balancer annotations apply: the kind, or an existing cluster's `cloud`."""

    @property
    def load_balancer_cloud(self) -> ClusterKind:
        return self.cloud or self.kind


@dataclass(frozen=True)
class ClusterFleetArgs:
    config: StackConfig


class ClusterFleet(pulumi.ComponentResource):
    """Builds every cluster of `config.clusters` and the twins they ask for."""

    by_name: dict[str, ClusterHandle]

    def __init__(
        self, name: str, args: ClusterFleetArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("hybrid-infra:clusters:ClusterFleet", name, None, opts)
        self.by_name = {
            name: self._build(cluster, args.config)
            for name, cluster in fleet.clusters(args.config).items()
        }
        self.register_outputs({"clusters": self.summary()})

    def summary(self) -> dict[str, dict[str, Any]]:
        """Names, kinds and endpoints: safe to export (no kubeconfig, no credential)."""
        return {
            name: {
                "kind": handle.kind,
                "endpoint": handle.endpoint,
                **({"twinOf": handle.twin_of} if handle.twin_of else {}),
            }
            for name, handle in self.by_name.items()
        }

    def _build(self, cluster: FleetCluster, config: StackConfig) -> ClusterHandle:
        name, spec = cluster.name, cluster.spec
        child = pulumi.ResourceOptions(parent=self)
        built: OnPremCluster | EksCluster | GkeCluster | ExistingCluster
        if isinstance(spec, ExistingClusterSpec):
            built = ExistingCluster(
                name, ExistingClusterArgs(spec, f"hybrid-infra:clusters.{name}"), opts=child
            )
        elif isinstance(spec, OnPremClusterSpec):
            built = OnPremCluster(
                name, OnPremClusterArgs(spec, required(config.on_prem, "onPrem")), opts=child
            )
        elif isinstance(spec, EksClusterSpec):
            built = EksCluster(
                name,
                EksClusterArgs(
                    spec, required(config.aws, "aws"), required(config.on_prem, "onPrem")
                ),
                opts=child,
            )
        else:
            built = GkeCluster(name, GkeClusterArgs(spec), opts=child)
        return ClusterHandle(
            name=name,
            kind=built.kind,
            kubeconfig=built.kubeconfig,
            provider=built.provider,
            endpoint=built.endpoint,
            twin_of=cluster.twin_of,
            cloud=spec.cloud if isinstance(spec, ExistingClusterSpec) else None,
        )
