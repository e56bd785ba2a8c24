"""A GKE cluster whose nodes live in one node pool per version (or deploy), never upgraded in place.

Nodes are upgraded without downtime by replacing them: create a new pool, cordon and drain the
old one, delete it. Here the pool's *name* carries its version and deploy id, so a new version in
the stack file is a new name, which GKE can only apply by replacing the pool. Pulumi replaces
create-before-delete by default, and a `NodePoolDrain` beside each pool drains the old nodes
between the two steps. `upgrade: blue-green` instead keeps the name and lets GKE's native
blue-green upgrade move the nodes; docs/gke-node-pools.md compares the two.

Least privilege: the nodes run as a service account of the cluster's own with the one role GKE
nodes need, Pods get Workload Identity instead of the nodes' credentials, the nodes have no
external address, and the control plane admits only `authorizedNetworks`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar, Literal

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s

from model.config import GkeBlueGreen, GkeClusterSpec
from model.gke_names import (
    gke_name,
    node_pool_name,
    node_service_account_email,
    node_service_account_id,
)
from model.kubeconfig import gke_kubeconfig
from providers.node_pool_drain import NodePoolDrain

NODE_ROLE = "roles/container.defaultNodeServiceAccount"
"""The least privilege GKE nodes need (GKE docs, "Use least privilege IAM service accounts")."""


@dataclass(frozen=True)
class GkeClusterArgs:
    spec: GkeClusterSpec


class GkeCluster(pulumi.ComponentResource):
    """The control plane (default pool removed), its kubeconfig, a provider, and the node pool."""

    kind: ClassVar[Literal["gke"]] = "gke"
    endpoint: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]

    def __init__(
        self, name: str, args: GkeClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("hybrid-infra:clusters:GkeCluster", name, None, opts)
        spec = args.spec
        self.cluster = gcp.container.Cluster(
            name,
            name=gke_name(name),
            project=spec.project,
            location=spec.location,
            min_master_version=spec.kubernetes_version,
            # GKE insists on a first pool; it is removed at once so that every node belongs to a
            # pool this program names and drains.
            remove_default_node_pool=True,
            initial_node_count=1,
            # No release channel: channel clusters force node auto-upgrade, which would change a
            # pool's version behind its name.
            release_channel=gcp.container.ClusterReleaseChannelArgs(channel="UNSPECIFIED"),
            # Pulumi's `protect` (on in prod) is the guard; GKE's own flag would make every
            # replacement or dev teardown fail half-way.
            deletion_protection=False,
            # Pods get Google identities of their own (none by default), never the node's.
            workload_identity_config=gcp.container.ClusterWorkloadIdentityConfigArgs(
                workload_pool=f"{spec.project}.svc.id.goog"
            ),
            # Nodes without external addresses; the control plane's endpoint admits only the
            # authorized networks, not even other Google Cloud customers' VMs.
            private_cluster_config=gcp.container.ClusterPrivateClusterConfigArgs(
                enable_private_nodes=True
            ),
            master_authorized_networks_config=gcp.container.ClusterMasterAuthorizedNetworksConfigArgs(
                cidr_blocks=[
                    gcp.container.ClusterMasterAuthorizedNetworksConfigCidrBlockArgs(
                        cidr_block=str(network), display_name=f"authorizedNetworks[{i}]"
                    )
                    for i, network in enumerate(spec.authorized_networks)
                ],
                gcp_public_cidrs_access_enabled=False,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.node_role = self._node_identity(name, spec)
        self.endpoint = self.cluster.endpoint
        self.kubeconfig = self._kubeconfig(name, spec)
        self.node_pool = GkeNodePool(
            f"{name}-pool",
            GkeNodePoolArgs(
                cluster_key=name,
                cluster=self.cluster,
                spec=spec,
                kubeconfig=self.kubeconfig,
                node_role=self.node_role,
            ),
            # Pools are cattle: a protected pool could never be replaced by the next version.
            opts=pulumi.ResourceOptions(parent=self, protect=False),
        )
        # Through the provider, workloads wait for the pool and its drain's Ready-node gate.
        self.provider = k8s.Provider(
            f"{name}-kubernetes",
            kubeconfig=self.kubeconfig,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.node_pool]),
        )
        self.register_outputs(
            {
                "endpoint": self.endpoint,
                "kubeconfig": self.kubeconfig,
                "nodePool": self.node_pool.pool_name,
            }
        )

    def _node_identity(self, name: str, spec: GkeClusterSpec) -> gcp.projects.IAMMember:
        """The nodes' IAM service account, of this cluster alone, and its one role: not the
        Compute Engine default account, which is shared and often holds the project's Editor
        role."""
        account = gcp.serviceaccount.Account(
            f"{name}-nodes",
            account_id=node_service_account_id(name),
            project=spec.project,
            display_name=f"GKE nodes of {gke_name(name)}",
            opts=pulumi.ResourceOptions(parent=self),
        )
        return gcp.projects.IAMMember(
            f"{name}-nodes-role",
            project=spec.project,
            role=NODE_ROLE,
            member=f"serviceAccount:{node_service_account_email(name, spec.project)}",
            opts=pulumi.ResourceOptions(parent=self, depends_on=[account]),
        )

    def _kubeconfig(self, name: str, spec: GkeClusterSpec) -> pulumi.Output[str]:
        return pulumi.Output.secret(
            pulumi.Output.all(
                self.cluster.endpoint,
                self.cluster.master_auth.apply(
                    lambda auth: str(getattr(auth, "cluster_ca_certificate", None) or "")
                ),
            ).apply(
                lambda values: gke_kubeconfig(
                    context=f"gke_{spec.project}_{spec.location}_{gke_name(name)}",
                    endpoint=str(values[0] or ""),
                    ca_data=str(values[1] or ""),
                )
            )
        )


@dataclass(frozen=True)
class GkeNodePoolArgs:
    cluster_key: str
    """The cluster's key in the stack file; the pool's name starts with it."""
    cluster: gcp.container.Cluster
    spec: GkeClusterSpec
    kubeconfig: pulumi.Input[str]
    node_role: pulumi.Resource
    """The grant of the nodes' service account: nodes start once it holds its role, or they
    could neither log nor report."""


class GkeNodePool(pulumi.ComponentResource):
    """One GKE node pool and the drain that guards its lifecycle, in both upgrade modes: a pool
    per version (a new name, so a new pool next to the old) or GKE's native blue-green."""

    def __init__(
        self, name: str, args: GkeNodePoolArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        # The type keeps the class's earlier name: it is part of every URN below it in
        # existing state, and a new one would need aliases for the pool and its drain.
        super().__init__("hybrid-infra:clusters:BlueGreenNodePool", name, None, opts)
        cluster_key, cluster, spec = args.cluster_key, args.cluster, args.spec
        pool = spec.node_pool
        self.pool_name = node_pool_name(cluster_key, spec)
        # Nothing here sets delete_before_replace: when the name changes, the new pool must be
        # up (and its drain created) before the old pool's drain runs and the old pool goes.
        self.pool = gcp.container.NodePool(
            f"{cluster_key}-nodepool",
            name=self.pool_name,
            cluster=cluster.name,
            project=spec.project,
            location=spec.location,
            version=pool.version,
            node_count=pool.node_count,
            node_config=gcp.container.NodePoolNodeConfigArgs(
                machine_type=pool.machine_type,
                labels={"hybrid-infra/pool-version": _label_value(pool.version)},
                # With a service account of its own, IAM decides what the nodes may do; the
                # scope only has to let IAM decide (Google's hardening guide).
                service_account=node_service_account_email(cluster_key, spec.project),
                oauth_scopes=["https://www.googleapis.com/auth/cloud-platform"],
                # Pods reach the GKE metadata server, which serves their own Workload Identity
                # and hides the node's credentials.
                workload_metadata_config=gcp.container.NodePoolNodeConfigWorkloadMetadataConfigArgs(
                    mode="GKE_METADATA"
                ),
            ),
            management=gcp.container.NodePoolManagementArgs(auto_repair=True, auto_upgrade=False),
            upgrade_settings=upgrade_settings(spec),
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[args.node_role],
                custom_timeouts=pulumi.CustomTimeouts(update=blue_green_update_timeout(spec)),
            ),
        )
        # depends_on the pool makes Pulumi delete this drain, which drains, before the pool.
        self.drain = NodePoolDrain(
            f"{cluster_key}-nodepool-drain",
            pool_name=self.pool_name,
            kubeconfig=args.kubeconfig,
            min_ready_nodes=pool.min_ready_nodes or pool.node_count,
            ready_timeout_seconds=pool.ready_timeout_seconds,
            drain_timeout_seconds=pool.drain_timeout_seconds,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.pool]),
        )
        self.register_outputs({"poolName": self.pool_name})


def upgrade_settings(spec: GkeClusterSpec) -> gcp.container.NodePoolUpgradeSettingsArgs:
    """SURGE (one extra node, none unavailable) for pool-per-version; GKE's BLUE_GREEN otherwise."""
    if spec.upgrade != "blue-green":
        return gcp.container.NodePoolUpgradeSettingsArgs(
            strategy="SURGE", max_surge=1, max_unavailable=0
        )
    blue_green = spec.blue_green or GkeBlueGreen()
    by_count = blue_green.batch_node_count
    if by_count is None and blue_green.batch_percentage is None:
        by_count = 1
    return gcp.container.NodePoolUpgradeSettingsArgs(
        strategy="BLUE_GREEN",
        blue_green_settings=gcp.container.NodePoolUpgradeSettingsBlueGreenSettingsArgs(
            node_pool_soak_duration=f"{blue_green.soak_duration_seconds}s",
            standard_rollout_policy=gcp.container.NodePoolUpgradeSettingsBlueGreenSettingsStandardRolloutPolicyArgs(
                batch_percentage=blue_green.batch_percentage,
                batch_node_count=by_count,
                batch_soak_duration=f"{blue_green.batch_soak_duration_seconds}s",
            ),
        ),
    )


def blue_green_update_timeout(spec: GkeClusterSpec) -> str | None:
    """How long `pulumi up` may wait for a native blue-green upgrade (None: provider default).

    The update returns only after every batch drained and soaked and the blue nodes soaked
    again, which outlasts the provider's default 30 minutes; each batch also gets GKE's one-hour
    budget for graceful Pod termination.
    """
    if spec.upgrade != "blue-green":
        return None
    blue_green = spec.blue_green or GkeBlueGreen()
    batches = spec.node_pool.node_count  # the worst case: one node per batch
    seconds = blue_green.soak_duration_seconds + batches * (
        blue_green.batch_soak_duration_seconds + 3600
    )
    return f"{seconds // 60 + 30}m"


def _label_value(version: str) -> str:
    """Kubernetes label values allow dots but not `+`; GKE versions fit as they are."""
    return re.sub(r"[^A-Za-z0-9._-]", "-", version)
