"""Clusters: names each cloud accepts, supported Kubernetes minors, who may reach EKS, and the
monitoring every cluster that hosts Prods runs."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

from model import fleet, kubernetes_versions
from model.config import GkeClusterSpec, OnPremClusterSpec, StackConfig
from model.fleet import FleetCluster
from model.gke_names import (
    GKE_NAME,
    SERVICE_ACCOUNT_ID,
    gke_name,
    node_pool_name,
    node_service_account_id,
)
from model.stackfile import PROJECT


def problems(config: StackConfig, today: date) -> list[str]:
    """Every cluster rule, on `today` (the calendar decides which minors are supported)."""
    found = []
    for name, cluster in config.clusters.items():
        twin = fleet.twin_name(name)
        if isinstance(cluster, OnPremClusterSpec) and cluster.twin and twin in config.clusters:
            found.append(
                f"{PROJECT}:clusters.{name}.twin: the twin would be named {twin}, "
                "which is already a configured cluster"
            )
        if isinstance(cluster, GkeClusterSpec):
            found.extend(_gke(name, cluster))
    clusters = fleet.clusters(config)
    found.extend(kubernetes_versions.check(clusters, today).errors)
    found.extend(_eks_access(config, clusters))
    found.extend(_monitoring(config, clusters))
    return found


def _eks_access(config: StackConfig, clusters: Mapping[str, FleetCluster]) -> list[str]:
    """EKS admits only access entries: someone must deploy, and no reader may be an admin."""
    if config.aws is None:
        return []
    found = []
    eks = [n for n, c in clusters.items() if c.kind == "eks"]
    if eks and not config.aws.cluster_admin_roles:
        found.append(
            f"{PROJECT}:aws.clusterAdminRoles: the EKS clusters ({', '.join(eks)}) admit only IAM "
            "principals with an access entry; name the roles that deploy this stack "
            "(Pulumi Deployments, the CI workflow), or they get 401 from the Kubernetes API"
        )
    for role in sorted(set(config.aws.cluster_admin_roles) & set(config.aws.cluster_viewer_roles)):
        found.append(
            f"{PROJECT}:aws.clusterViewerRoles: {role} is also in aws.clusterAdminRoles; "
            "a reader identity must not hold cluster admin (docs/delivery.md): keep it in one "
            "list"
        )
    return found


def _monitoring(config: StackConfig, clusters: Mapping[str, FleetCluster]) -> list[str]:
    """A cluster that hosts Prods says it runs the Prometheus operator.

    Every Prod ships a PrometheusRule and a PodMonitor, and the wave gate reads their alerts
    and samples. Without the operator's CRDs the kubernetes provider refuses to create them
    ("the apiVersion for this resource does not exist"), half-way through an `up`; saying so
    here stops the run before anything is registered.
    """
    hosted: dict[str, list[str]] = {}
    for name, prod in sorted(config.prods.items()):
        cluster = clusters.get(prod.cluster)
        if cluster is not None and cluster.spec.monitoring != "prometheus-operator":
            hosted.setdefault(prod.cluster, []).append(name)
    problems = []
    for name, prods in hosted.items():
        cluster = clusters[name]
        where = name if cluster.twin_of is None else f"{name} (the twin of {cluster.twin_of})"
        problems.append(
            f"{PROJECT}:clusters.{cluster.configured_as}.monitoring: {where} hosts Prod(s) "
            f"{', '.join(prods)}, and each ships alert rules and a PodMonitor "
            "(monitoring.coreos.com/v1) that the wave gate reads; install the Prometheus "
            f"operator on {name} and set monitoring: prometheus-operator "
            f"(got {cluster.spec.monitoring})"
        )
    return problems


def _gke(cluster_key: str, spec: GkeClusterSpec) -> list[str]:
    """Config mistakes the config model does not catch, with their key paths."""
    path = f"{PROJECT}:clusters.{cluster_key}"
    problems = []
    for what, value in (
        ("cluster", gke_name(cluster_key)),
        ("pool", node_pool_name(cluster_key, spec)),
    ):
        if not GKE_NAME.match(value):
            problems.append(
                f"{path}: the GKE {what} name would be {value!r}; GKE needs 1-40 lowercase "
                "letters, digits or hyphens starting with a letter (shorten the cluster name "
                "or the deploy id)"
            )
    if not spec.authorized_networks:
        problems.append(
            f"{path}.authorizedNetworks: the control plane admits only these networks and none "
            "is listed; give the on-prem egress ranges that run `pulumi up` and kubectl"
        )
    account = node_service_account_id(cluster_key)
    if not SERVICE_ACCOUNT_ID.match(account):
        problems.append(
            f"{path}: the nodes' service account would be {account!r}; IAM needs 6-30 lowercase "
            "letters, digits or hyphens starting with a letter (shorten the cluster name)"
        )
    bg = spec.blue_green
    if bg is not None and bg.batch_percentage is not None and bg.batch_node_count is not None:
        problems.append(f"{path}.blueGreen: give batchPercentage or batchNodeCount, not both")
    return problems
