"""Kubernetes clusters as cattle: on-prem (Magnum), EKS (with twins) and GKE (pool per version)."""

from components.clusters.eks import EksCluster
from components.clusters.fleet import ClusterFleet, ClusterHandle
from components.clusters.gke import GkeCluster, GkeNodePool
from components.clusters.onprem import OnPremCluster

__all__ = [
    "ClusterFleet",
    "ClusterHandle",
    "EksCluster",
    "GkeCluster",
    "GkeNodePool",
    "OnPremCluster",
]
