"""An EKS cluster from plain pulumi-aws resources, through the platform's aws provider.

Why not `pulumi_eks`: it is a multi-language component, so its Python package is only a thin
client. The resources are made by its own plugin, which runs on Node.js at deploy time. This
program's runtime is Python alone, and the plugin cannot be unit-tested under Python mocks (the
mocks would see one opaque `eks:index:Cluster`). Plain `aws.eks` / `aws.iam` resources cost a
few more lines here and need only the aws provider, which the platform already configures.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from model.config import AwsConfig, EksClusterSpec, OnPremConfig
from model.kubeconfig import eks_kubeconfig

CLUSTER_POLICIES = ("arn:aws:iam::aws:policy/AmazonEKSClusterPolicy",)
ADMIN_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
# Read-only, like Kubernetes' user-facing `view` role
# (https://docs.aws.amazon.com/eks/latest/userguide/access-policy-permissions.html).
VIEW_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy"
NODE_POLICIES = (
    "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
    "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy",
    "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly",
)


@dataclass(frozen=True)
class EksClusterArgs:
    spec: EksClusterSpec
    aws: AwsConfig
    on_prem: OnPremConfig
    """Its Direct Connect ranges reach the private API server."""


class EksCluster(pulumi.ComponentResource):
    """IAM roles, control plane, OIDC provider, managed node groups, kubeconfig and provider."""

    kind: ClassVar[Literal["eks"]] = "eks"
    endpoint: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]

    def __init__(
        self, name: str, args: EksClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("hybrid-infra:clusters:EksCluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.cluster = self._control_plane(name, args, child)
        access = [
            *self._api_from_on_prem(name, args.on_prem, child),
            *self._grant(name, "admin", args.aws.cluster_admin_roles, ADMIN_POLICY, child),
            *self._grant(name, "viewer", args.aws.cluster_viewer_roles, VIEW_POLICY, child),
        ]
        self.oidc_provider = aws.iam.OpenIdConnectProvider(
            f"{name}-oidc",
            url=self.cluster.identities.apply(_issuer),
            client_id_lists=["sts.amazonaws.com"],
            opts=child,
        )
        self.node_groups = self._node_groups(name, args, child)
        self.endpoint = self.cluster.endpoint
        self.kubeconfig = self._kubeconfig(args.aws.region)
        # Through the provider, workloads deployed on this cluster wait for nodes to run on.
        self.provider = k8s.Provider(
            f"{name}-kubernetes",
            kubeconfig=self.kubeconfig,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*self.node_groups, *access]),
        )
        self.register_outputs(
            {
                "endpoint": self.endpoint,
                "kubeconfig": self.kubeconfig,
                "oidcProviderArn": self.oidc_provider.arn,
            }
        )

    def _control_plane(
        self, name: str, args: EksClusterArgs, opts: pulumi.ResourceOptions
    ) -> aws.eks.Cluster:
        role = aws.iam.Role(
            f"{name}-cluster-role", assume_role_policy=_trust("eks.amazonaws.com"), opts=opts
        )
        policies = _attach(f"{name}-cluster", role, CLUSTER_POLICIES, opts)
        return aws.eks.Cluster(
            name,
            role_arn=role.arn,
            version=args.spec.kubernetes_version,
            vpc_config=aws.eks.ClusterVpcConfigArgs(
                subnet_ids=list(args.aws.subnet_ids),
                # The API server is a control address: reach it over Direct Connect only, from
                # on-prem (operators, the Deployments agent pool), never from the internet.
                endpoint_private_access=True,
                endpoint_public_access=False,
            ),
            access_config=aws.eks.ClusterAccessConfigArgs(
                authentication_mode="API",
                # Admins are exactly aws.clusterAdminRoles (access entries below). A bootstrap
                # entry for the creator would collide with its entry when it is listed, and
                # it cannot be changed once the cluster exists.
                bootstrap_cluster_creator_admin_permissions=False,
            ),
            enabled_cluster_log_types=["api", "audit", "authenticator"],
            opts=pulumi.ResourceOptions(parent=self, depends_on=policies),
        )

    def _node_groups(
        self, name: str, args: EksClusterArgs, opts: pulumi.ResourceOptions
    ) -> list[aws.eks.NodeGroup]:
        role = aws.iam.Role(
            f"{name}-node-role", assume_role_policy=_trust("ec2.amazonaws.com"), opts=opts
        )
        policies = _attach(f"{name}-node", role, NODE_POLICIES, opts)
        return [
            aws.eks.NodeGroup(
                f"{name}-{group.name}",
                cluster_name=self.cluster.name,
                node_role_arn=role.arn,
                subnet_ids=list(args.aws.subnet_ids),
                version=args.spec.kubernetes_version,
                instance_types=list(group.instance_types),
                scaling_config=aws.eks.NodeGroupScalingConfigArgs(
                    min_size=group.min_size,
                    desired_size=group.desired_size,
                    max_size=group.max_size,
                ),
                update_config=aws.eks.NodeGroupUpdateConfigArgs(max_unavailable=1),
                labels={"hybrid-infra/node-group": group.name},
                opts=pulumi.ResourceOptions(
                    parent=self,
                    depends_on=policies,
                    # Node groups are cattle (a new instance type replaces the group), and the
                    # cluster autoscaler owns the desired size once the group exists.
                    protect=False,
                    ignore_changes=["scalingConfig.desiredSize"],
                ),
            )
            for group in args.spec.node_groups
        ]

    def _kubeconfig(self, region: str) -> pulumi.Output[str]:
        return pulumi.Output.secret(
            pulumi.Output.all(
                self.cluster.name,
                self.cluster.endpoint,
                self.cluster.certificate_authority.apply(_ca_data),
            ).apply(
                lambda values: eks_kubeconfig(
                    cluster_name=str(values[0] or ""),
                    endpoint=str(values[1] or ""),
                    ca_data=str(values[2] or ""),
                    region=region,
                )
            )
        )

    def _api_from_on_prem(
        self, name: str, on_prem: OnPremConfig, opts: pulumi.ResourceOptions
    ) -> list[pulumi.Resource]:
        """HTTPS to the private API server from the Direct Connect ranges (on-prem runners and
        operators); EKS's own cluster security group admits only the cluster itself. Rules
        on that group, not a new group on the cluster: changing a cluster's groups replaces it.
        """
        group = self.cluster.vpc_config.cluster_security_group_id
        return [
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-api-from-{cidr.network_address}-{cidr.prefixlen}",
                security_group_id=group,
                cidr_ipv4=str(cidr),
                ip_protocol="tcp",
                from_port=443,
                to_port=443,
                description="Kubernetes API over Direct Connect",
                opts=opts,
            )
            for cidr in on_prem.dx_cidrs
        ]

    def _grant(
        self,
        name: str,
        kind: str,
        roles: tuple[str, ...],
        policy: str,
        opts: pulumi.ResourceOptions,
    ) -> list[pulumi.Resource]:
        """With `authentication_mode="API"` only access entries authenticate: the creator alone
        would be admin, and every other preview or deploy role would get 401. Each role gets an
        entry and `policy` over the whole cluster."""
        granted: list[pulumi.Resource] = []
        for role in roles:
            key = f"{name}-{kind}-{role.rsplit('/', 1)[-1]}"
            entry = aws.eks.AccessEntry(
                key, cluster_name=self.cluster.name, principal_arn=role, type="STANDARD", opts=opts
            )
            granted.append(
                aws.eks.AccessPolicyAssociation(
                    key,
                    cluster_name=self.cluster.name,
                    principal_arn=entry.principal_arn,
                    policy_arn=policy,
                    access_scope=aws.eks.AccessPolicyAssociationAccessScopeArgs(type="cluster"),
                    opts=opts,
                )
            )
        return granted


def _trust(service: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": service},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
    )


def _attach(
    prefix: str, role: aws.iam.Role, policies: tuple[str, ...], opts: pulumi.ResourceOptions
) -> list[pulumi.Resource]:
    return [
        aws.iam.RolePolicyAttachment(
            f"{prefix}-{arn.rsplit('/', 1)[-1]}", role=role.name, policy_arn=arn, opts=opts
        )
        for arn in policies
    ]


def _issuer(identities: Any) -> str:
    """The cluster's OIDC issuer URL (empty until the cluster exists)."""
    for identity in identities or ():
        for oidc in identity.oidcs or ():
            if oidc.issuer:
                return str(oidc.issuer)
    return ""


def _ca_data(authority: Any) -> str:
    return str(getattr(authority, "data", None) or "")
