"""Type tokens and lookups for what a synthesis (`tools.synth.synthesize`) registered.

One place for the tokens, so a renamed type is fixed once and not in every test file. The
tokens are spelled out here rather than imported from the program or the policy pack: a test
that took them from the code under test would follow a wrong rename instead of catching it.

`Synthesis.of_type`, `.named` and `.children` cover the whole run; the helpers here add what
they do not: a typed lookup (names repeat across types: `shop-nlb` is an NLB and its security
group), a component's whole subtree, and a resource's provider.
"""

from __future__ import annotations

from collections.abc import Iterable

from tools.synth import Registered, Synthesis

# --- our components ----------------------------------------------------------------------------

HYBRID_LB = "hybrid-infra:lb:HybridLoadBalancer"
WEIGHTED_DNS = "hybrid-infra:dns:WeightedFailover"
PROD = "hybrid-infra:prod:Prod"
EDGE_PROXY = "hybrid-infra:edge:EdgeProxy"
ONPREM_CLUSTER = "hybrid-infra:clusters:OnPremCluster"
EKS_CLUSTER_COMPONENT = "hybrid-infra:clusters:EksCluster"
GKE_CLUSTER_COMPONENT = "hybrid-infra:clusters:GkeCluster"

# --- our dynamic providers ---------------------------------------------------------------------

SYNC = "pulumi-python:dynamic/hybrid-infra:OctaviaNlbSync"
DRAIN = "pulumi-python:dynamic/hybrid-infra:NodePoolDrain"

# --- the engine's own and provider resources ---------------------------------------------------

ROOT_STACK = "pulumi:pulumi:Stack"

AWS_PROVIDER = "pulumi:providers:aws"
OPENSTACK_PROVIDER = "pulumi:providers:openstack"
KUBERNETES_PROVIDER = "pulumi:providers:kubernetes"

# --- AWS ---------------------------------------------------------------------------------------

NLB = "aws:lb/loadBalancer:LoadBalancer"
TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"
LISTENER = "aws:lb/listener:Listener"
RECORD = "aws:route53/record:Record"
HEALTH_CHECK = "aws:route53/healthCheck:HealthCheck"
METRIC_ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
EKS_CLUSTER = "aws:eks/cluster:Cluster"
EKS_NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
EKS_ACCESS_ENTRY = "aws:eks/accessEntry:AccessEntry"
EKS_ACCESS_POLICY = "aws:eks/accessPolicyAssociation:AccessPolicyAssociation"
IAM_ROLE = "aws:iam/role:Role"
IAM_OIDC_PROVIDER = "aws:iam/openIdConnectProvider:OpenIdConnectProvider"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"

# --- OpenStack ---------------------------------------------------------------------------------

OCTAVIA_LB = "openstack:loadbalancer/loadBalancer:LoadBalancer"
OCTAVIA_POOL = "openstack:loadbalancer/pool:Pool"
OCTAVIA_MEMBER = "openstack:loadbalancer/member:Member"
SECGROUP_RULE = "openstack:networking/secGroupRule:SecGroupRule"
MAGNUM_CLUSTER = "openstack:containerinfra/cluster:Cluster"
MAGNUM_TEMPLATE = "openstack:containerinfra/clusterTemplate:ClusterTemplate"

# --- GCP ---------------------------------------------------------------------------------------

GKE_CLUSTER = "gcp:container/cluster:Cluster"
GKE_NODE_POOL = "gcp:container/nodePool:NodePool"
GCP_SERVICE_ACCOUNT = "gcp:serviceaccount/account:Account"
GCP_PROJECT_IAM_MEMBER = "gcp:projects/iAMMember:IAMMember"

# --- Kubernetes --------------------------------------------------------------------------------

NAMESPACE = "kubernetes:core/v1:Namespace"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE = "kubernetes:core/v1:Service"
CONFIGMAP = "kubernetes:core/v1:ConfigMap"
SECRET = "kubernetes:core/v1:Secret"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
PROMETHEUS_RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
POD_MONITOR = "kubernetes:monitoring.coreos.com/v1:PodMonitor"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"

# --- Pulumi Cloud (the deployments/ project) ---------------------------------------------------

DEPLOYMENT_SETTINGS = "pulumiservice:index:DeploymentSettings"
DRIFT_SCHEDULE = "pulumiservice:index:DriftSchedule"
AGENT_POOL = "pulumiservice:index:AgentPool"
POLICY_GROUP = "pulumiservice:index:PolicyGroup"


# --- lookups -----------------------------------------------------------------------------------


def one(
    resources: Iterable[Registered], name: str | None = None, type_: str | None = None
) -> Registered:
    """The single resource of `resources` (called `name`, of `type_`, when given).

    `Synthesis.named` is untyped and whole-run; this takes any selection, e.g. a subtree or a
    list a test mutated, and fails naming what it found, so a second match cannot hide.
    """
    found = [
        r
        for r in resources
        if (name is None or r.name == name) and (type_ is None or r.type == type_)
    ]
    listed = ", ".join(f"{r.type}::{r.name}" for r in found)
    assert len(found) == 1, f"{len(found)} resources match {name=} {type_=}: {listed}"
    return found[0]


def descendants(result: Synthesis, root: Registered) -> Synthesis:
    """Everything below `root` at any depth, as a Synthesis so `of_type`/`named` apply to it.

    Components nest (a hybrid LB holds its weighted DNS, which holds the records), so
    `Synthesis.children` alone misses most of what a component declared.
    """
    below: set[str] = set()
    frontier = {root.urn}
    while frontier:
        frontier = {r.urn for r in result.resources if r.parent in frontier}
        below |= frontier
    return Synthesis(result.stack, tuple(r for r in result.resources if r.urn in below), {})


def children_by_type(result: Synthesis, type_: str, name: str) -> dict[str, Registered]:
    """The direct children of the component `name` of `type_`, keyed by their type token."""
    return {r.type: r for r in result.children(one(result.of_type(type_), name))}


def provider_urn(resource: Registered) -> str | None:
    """The URN of the provider `resource` is registered with (references are `<urn>::<id>`)."""
    return resource.provider.rsplit("::", 1)[0] if resource.provider else None
