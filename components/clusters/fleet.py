"""Every Kubernetes cluster of a stack, by name: the configured ones plus their EKS twins.

The seed's platform promise is "create an on-prem cluster and an EKS cluster comes with it".
A twin is an ordinary `EksCluster` of the same Kubernetes minor, named `twin_name(name)`
(`A-eks`), so Prods can be placed on it like on any other cluster: they look clusters up in
`ClusterFleet.by_name`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import pulumi
import pulumi_kubernetes as k8s

from components.clusters.eks import EksCluster
from components.clusters.gke import GkeCluster, gke_problems
from components.clusters.onprem import OnPremCluster
from model.config import (
    Cluster,
    EksClusterSpec,
    GkeClusterSpec,
    NodeGroup,
    OnPremClusterSpec,
    StackConfig,
    twin_name,
)

ClusterKind = Literal["onprem", "eks", "gke"]
TWIN_INSTANCE_TYPES = ("m6i.xlarge", "m6a.xlarge")


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


class ClusterFleet(pulumi.ComponentResource):
    """Builds every cluster of `config.clusters` and the twins they ask for."""

    by_name: dict[str, ClusterHandle]

    def __init__(
        self, name: str, config: StackConfig, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("hybrid-infra:clusters:ClusterFleet", name, None, opts)
        self.by_name = {}
        for cluster_name, spec in config.clusters.items():
            self.by_name[cluster_name] = self._build(cluster_name, spec, config)
        for cluster_name, spec in config.clusters.items():
            if isinstance(spec, OnPremClusterSpec) and spec.twin == "eks":
                twin = twin_name(cluster_name)
                self.by_name[twin] = self._build(
                    twin, twin_spec(spec), config, twin_of=cluster_name
                )
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

    def _build(
        self, name: str, spec: Cluster, config: StackConfig, twin_of: str | None = None
    ) -> ClusterHandle:
        child = pulumi.ResourceOptions(parent=self)
        built: OnPremCluster | EksCluster | GkeCluster
        if isinstance(spec, OnPremClusterSpec):
            built = OnPremCluster(name, spec, config.on_prem, opts=child)
        elif isinstance(spec, EksClusterSpec):
            built = EksCluster(name, spec, config.aws, config.on_prem, opts=child)
        else:
            built = GkeCluster(name, spec, opts=child)
        return ClusterHandle(
            name=name,
            kind=built.kind,
            kubeconfig=built.kubeconfig,
            provider=built.provider,
            endpoint=built.endpoint,
            twin_of=twin_of,
        )


def twin_spec(onprem: OnPremClusterSpec) -> EksClusterSpec:
    """The EKS twin: same Kubernetes minor, sized to carry the on-prem cluster's load alone."""
    return EksClusterSpec(
        kind="eks",
        kubernetes_version=onprem.kubernetes_version,
        node_groups=(
            NodeGroup(
                name="twin",
                instance_types=TWIN_INSTANCE_TYPES,
                min_size=1,
                desired_size=onprem.node_count,
                max_size=max(4, 2 * onprem.node_count),
            ),
        ),
        capacity=onprem.capacity,
        drained=onprem.drained,
    )


def fleet_problems(config: StackConfig) -> list[str]:
    """Cluster mistakes the config model cannot see (GKE naming rules, blue-green batches)."""
    problems: list[str] = []
    for name, spec in config.clusters.items():
        if isinstance(spec, GkeClusterSpec):
            problems.extend(gke_problems(name, spec))
    return problems
