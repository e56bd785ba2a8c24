"""The names GKE gives a cluster and its node pool, and the rule they must follow (pure).

A pool's name carries its version (pool-per-version) and deploy id, so a new version in the
stack file is a new pool; GKE refuses names that break `GKE_NAME`.
"""

from __future__ import annotations

import re

from model.config import GkeClusterSpec

GKE_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$")
"""GKE cluster and node pool names: lowercase, start with a letter, at most 40 characters."""


def node_pool_name(cluster_key: str, spec: GkeClusterSpec) -> str:
    """`g-1-30-5-gke-1014-r42`: cluster, then the version (pool-per-version only), then deploy id.

    Under `blue-green` the version stays out of the name, so that a new version is an in-place
    update which GKE carries out as its own blue-green upgrade.
    """
    parts = [_dns_label(cluster_key)]
    if spec.upgrade == "pool-per-version":
        parts.append(_dns_label(spec.node_pool.version))
    else:
        parts.append("pool")
    if spec.node_pool.deploy_id:
        parts.append(spec.node_pool.deploy_id)
    return "-".join(parts)


def gke_name(cluster_key: str) -> str:
    return _dns_label(cluster_key)


SERVICE_ACCOUNT_ID = re.compile(r"^[a-z]([-a-z0-9]{4,28}[a-z0-9])$")
"""IAM service account ids: 6-30 lowercase letters, digits or hyphens, starting with a letter."""


def node_service_account_id(cluster_key: str) -> str:
    """`gke-nodes-g`: the cluster's own node identity, shared with nothing else."""
    return f"gke-nodes-{gke_name(cluster_key)}"


def node_service_account_email(cluster_key: str, project: str) -> str:
    """The address IAM gives a service account made in `project`: known before it exists."""
    return f"{node_service_account_id(cluster_key)}@{project}.iam.gserviceaccount.com"


def _dns_label(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
