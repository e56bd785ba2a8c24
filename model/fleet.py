"""Every Kubernetes cluster of a stack, by name: the configured ones plus their EKS twins (pure).

An on-prem cluster with `twin: eks` brings an EKS cluster of the same Kubernetes minor, named
`twin_name(name)` (`A-eks`), sized to carry the on-prem cluster's load alone and drained with
it. Prods are placed on a twin like on any other cluster. This module is the one place that
expansion is written: the cluster components, placement, the routing and the rules all use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from model.config import Cluster, EksClusterSpec, NodeGroup, OnPremClusterSpec, StackConfig

ClusterKind = Literal["onprem", "eks", "gke", "existing"]
TWIN_INSTANCE_TYPES = ("m6i.xlarge", "m6a.xlarge")


@dataclass(frozen=True, slots=True)
class FleetCluster:
    name: str
    spec: Cluster
    """A twin's is the `EksClusterSpec` derived from its on-prem cluster."""
    twin_of: str | None = None

    @property
    def kind(self) -> ClusterKind:
        return self.spec.kind

    @property
    def configured_as(self) -> str:
        """The `clusters` key that configures it: a twin is sized and drained by its cluster."""
        return self.twin_of or self.name


def clusters(config: StackConfig) -> dict[str, FleetCluster]:
    """The configured clusters in the stack file's order, then the twins they ask for."""
    fleet = {name: FleetCluster(name, spec) for name, spec in config.clusters.items()}
    for name, spec in config.clusters.items():
        if isinstance(spec, OnPremClusterSpec) and spec.twin == "eks":
            fleet[twin_name(name)] = FleetCluster(twin_name(name), twin_spec(spec), twin_of=name)
    return fleet


def drained_clusters(config: StackConfig) -> frozenset[str]:
    """Drained clusters by the names Prods use, twins included."""
    return frozenset(name for name, c in clusters(config).items() if c.spec.drained)


def twin_name(cluster: str) -> str:
    """The EKS twin of on-prem cluster `A` is `A-eks`: recognisable, and stable across runs."""
    return f"{cluster}-eks"


def twin_spec(onprem: OnPremClusterSpec) -> EksClusterSpec:
    """The EKS twin: same Kubernetes minor, sized to carry the on-prem cluster's load alone,
    drained and monitored as its cluster says."""
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
        monitoring=onprem.monitoring,
    )
