"""Kubernetes clusters as cattle: on-prem (Magnum), EKS (with twins) and GKE (pool per version)."""

from components.clusters.eks import EksCluster
from components.clusters.fleet import ClusterFleet, ClusterHandle
from components.clusters.gke import BlueGreenNodePool, GkeCluster
from components.clusters.onprem import OnPremCluster

__all__ = [
    "BlueGreenNodePool",
    "ClusterFleet",
    "ClusterHandle",
    "EksCluster",
    "GkeCluster",
    "OnPremCluster",
]
