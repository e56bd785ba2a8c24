"""Kubernetes clusters as cattle, seen through the real program and stack files under mocks.

Clusters A (on-prem, with an EKS twin), B (EKS), C (on-prem) and G (GKE) exist; each has its
own Kubernetes provider fed a secret kubeconfig; GKE's node pool carries its version in its name
and has a drain that depends on it; nothing deletes before replacing.
"""

from __future__ import annotations

import contextvars
import json
from collections.abc import Callable
from typing import Any

import pulumi
import pytest
import yaml
from pulumi.runtime import rpc
from pulumi.runtime.sync_await import _sync_await

from components.clusters.fleet import ClusterFleet, ClusterFleetArgs
from components.clusters.gke import blue_green_update_timeout
from model import fleet
from model.config import ConfigError, GkeClusterSpec
from model.fleet import twin_spec
from model.gke_names import node_pool_name
from model.kubeconfig import eks_kubeconfig, gke_kubeconfig, magnum_kubeconfig
from model.stack import parse
from tests.fixtures.program import NS, raw_of, synth_with
from tests.support.synthesis import (
    AWS_PROVIDER,
    DRAIN,
    EKS_ACCESS_ENTRY,
    EKS_ACCESS_POLICY,
    EKS_CLUSTER,
    EKS_CLUSTER_COMPONENT,
    EKS_NODE_GROUP,
    GCP_PROJECT_IAM_MEMBER,
    GCP_SERVICE_ACCOUNT,
    GKE_CLUSTER,
    GKE_CLUSTER_COMPONENT,
    GKE_NODE_POOL,
    IAM_OIDC_PROVIDER,
    IAM_ROLE,
    INGRESS_RULE,
    KUBERNETES_PROVIDER,
    MAGNUM_CLUSTER,
    MAGNUM_TEMPLATE,
    ONPREM_CLUSTER,
    OPENSTACK_PROVIDER,
    descendants,
    one,
)
from tools.synth import ProgramFailed, Registered, Synthesis, stack_config, synthesize

COMPONENTS = {"onprem": ONPREM_CLUSTER, "eks": EKS_CLUSTER_COMPONENT, "gke": GKE_CLUSTER_COMPONENT}
CLUSTER_RESOURCES = {"onprem": MAGNUM_CLUSTER, "eks": EKS_CLUSTER, "gke": GKE_CLUSTER}


@pytest.fixture(scope="module")
def prod() -> Synthesis:
    """One read-only run of the prod stack, shared by the tests that only look at it."""
    return synthesize("prod")


def component(result: Synthesis, name: str) -> Registered:
    """The cluster component `name`, whatever its kind."""
    return one(r for r in result.resources if r.name == name and r.type in COMPONENTS.values())


def unwrap(value: Any) -> Any:
    return value["value"] if rpc.is_rpc_secret(value) else value


# --- the fleet ---------------------------------------------------------------------------------


def test_prod_builds_clusters_a_b_c_g_and_the_twin_of_a(prod):
    expected = {"A": "onprem", "B": "eks", "C": "onprem", "G": "gke", "A-eks": "eks"}
    for name, kind in expected.items():
        assert component(prod, name).type == COMPONENTS[kind]
        real = [r for r in descendants(prod, component(prod, name)).resources if r.custom]
        assert any(r.type == CLUSTER_RESOURCES[kind] for r in real), name
    assert set(prod.outputs["clusters"]) == set(expected)
    assert {n: c["kind"] for n, c in prod.outputs["clusters"].items()} == expected
    assert prod.outputs["clusters"]["A-eks"]["twinOf"] == "A"


def test_eks_api_servers_are_reachable_over_direct_connect_only(prod):
    eks = prod.of_type(EKS_CLUSTER)
    assert {r.name for r in eks} == {"A-eks", "B"}
    for cluster in eks:
        vpc = cluster.inputs["vpcConfig"]
        assert vpc["endpointPrivateAccess"] is True
        assert vpc["endpointPublicAccess"] is False


def test_eks_api_servers_admit_https_from_every_direct_connect_range(prod):
    """Mocks, program shape: without these rules on EKS's cluster security group, on-prem
    runners (the Kubernetes provider, kubectl) time out on the private endpoint."""
    raw = raw_of()
    for name in ("A-eks", "B"):
        below = descendants(prod, component(prod, name))
        rules = below.of_type(INGRESS_RULE)
        assert sorted(r.inputs["cidrIpv4"] for r in rules) == sorted(raw["onPrem"]["dxCidrs"])
        for rule in rules:
            assert (rule.inputs["ipProtocol"], rule.inputs["fromPort"], rule.inputs["toPort"]) == (
                "tcp",
                443,
                443,
            )
            assert rule.inputs["securityGroupId"] == f"sg-{name}"  # the one EKS made


def test_every_configured_role_is_an_eks_admin_or_viewer_and_only_those(prod):
    """With authentication_mode API only access entries authenticate: each role that deploys
    gets an entry and the cluster-admin policy, each reader the view policy, before the
    cluster's provider is used."""
    admins, viewers = raw_of()["aws"]["clusterAdminRoles"], raw_of()["aws"]["clusterViewerRoles"]
    policy = "arn:aws:eks::aws:cluster-access-policy/AmazonEKS{}Policy"
    for name in ("A-eks", "B"):
        below = descendants(prod, component(prod, name))
        (cluster,) = below.of_type(EKS_CLUSTER)
        assert cluster.inputs["accessConfig"] == {
            "authenticationMode": "API",
            "bootstrapClusterCreatorAdminPermissions": False,
        }
        entries = below.of_type(EKS_ACCESS_ENTRY)
        grants = below.of_type(EKS_ACCESS_POLICY)
        assert sorted(e.inputs["principalArn"] for e in entries) == sorted(admins + viewers)
        assert {g.inputs["principalArn"]: g.inputs["policyArn"] for g in grants} == {
            **{role: policy.format("ClusterAdmin") for role in admins},
            **{role: policy.format("View") for role in viewers},
        }
        (provider,) = below.of_type(KUBERNETES_PROVIDER)
        assert {g.urn for g in grants} <= set(provider.dependencies)


def test_each_stack_admits_its_own_deployments_roles_on_eks():
    """The update role Pulumi Deployments assumes for a stack (deployments/Pulumi.main.yaml)
    must be an EKS admin in that stack, and its reader role a viewer and never an admin, or
    every deployment or preview gets 401 from the clusters the stack creates."""
    with open("deployments/Pulumi.main.yaml") as file:
        deployments = yaml.safe_load(file)["config"]
    for stack, settings in deployments["hybrid-infra-deployments:stacks"].items():
        config, _ = stack_config(stack)
        aws = json.loads(config[NS + "aws"])
        assert settings["aws"]["roleArn"] in aws.get("clusterAdminRoles", []), stack
        assert settings["reader"]["aws"]["roleArn"] in aws.get("clusterViewerRoles", []), stack
        assert settings["reader"]["aws"]["roleArn"] not in aws.get("clusterAdminRoles", []), stack


def test_eks_without_admin_roles_is_a_config_error():
    raw = raw_of()
    del raw["aws"]["clusterAdminRoles"]
    with pytest.raises(ConfigError) as error:
        parse(raw)
    assert error.value.problems == [
        "hybrid-infra:aws.clusterAdminRoles: the EKS clusters (B, A-eks) admit only IAM "
        "principals with an access entry; name the roles that deploy this stack "
        "(Pulumi Deployments, the CI workflow), or they get 401 from the Kubernetes API"
    ]


def test_a_role_that_is_both_admin_and_viewer_is_a_config_error():
    raw = raw_of()
    admin = raw["aws"]["clusterAdminRoles"][0]
    raw["aws"]["clusterViewerRoles"] = [admin]
    with pytest.raises(ConfigError) as error:
        parse(raw)
    assert error.value.problems == [
        f"hybrid-infra:aws.clusterViewerRoles: {admin} is also in aws.clusterAdminRoles; "
        "a reader identity must not hold cluster admin (docs/delivery.md): keep it in one list"
    ]


def test_twin_runs_the_same_kubernetes_minor_as_its_onprem_cluster(prod):
    eks = one(prod.of_type(EKS_CLUSTER), "A-eks")
    assert eks.inputs["version"] == parse(raw_of()).clusters["A"].kubernetes_version

    def upgrade_a(raw: dict[str, Any]) -> None:
        raw["clusters"]["A"]["kubernetesVersion"] = "1.35"

    upgraded = synth_with(upgrade_a)
    versions = {r.name: r.inputs["version"] for r in upgraded.of_type(EKS_CLUSTER)}
    assert versions == {"A-eks": "1.35", "B": "1.35"}
    (template,) = [r for r in upgraded.of_type(MAGNUM_TEMPLATE) if r.name.startswith("A-")]
    assert template.inputs["labels"]["kube_tag"].startswith("v1.35.")


def test_a_changed_magnum_template_is_a_new_template_never_a_patch(prod):
    """Magnum refuses to update a template a cluster uses, so a new image (or version, flavor)
    must be a new template under a new name: a new URN, not new inputs on the old one."""
    (before,) = [r for r in prod.of_type(MAGNUM_TEMPLATE) if r.name.startswith("A-")]
    after = synth_with(lambda raw: raw["clusters"]["A"].update(templateImage="fcos-41"))
    (changed,) = [r for r in after.of_type(MAGNUM_TEMPLATE) if r.name.startswith("A-")]
    assert changed.urn != before.urn and changed.inputs["name"] != before.inputs["name"]
    assert changed.inputs["image"] == "fcos-41" and before.inputs["image"] != "fcos-41"
    assert changed.inputs["name"].startswith("A-v1-36-")
    (c_template,) = [r for r in after.of_type(MAGNUM_TEMPLATE) if r.name.startswith("C-")]
    assert c_template.urn in {r.urn for r in prod.of_type(MAGNUM_TEMPLATE)}  # C's is untouched


def test_only_onprem_clusters_that_ask_for_a_twin_get_one(prod):
    assert not [r for r in prod.resources if r.name in ("C-eks", "B-eks", "G-eks")]
    spec = parse(raw_of()).clusters["A"]
    twin = twin_spec(spec)  # type: ignore[arg-type]
    assert twin.kubernetes_version == spec.kubernetes_version
    assert twin.node_groups[0].desired_size == spec.node_count  # type: ignore[union-attr]


def test_each_cluster_has_its_own_kubernetes_provider_parented_under_it(prod):
    for name in ("A", "B", "C", "G", "A-eks"):
        cluster = component(prod, name)
        providers = [r for r in prod.children(cluster) if r.type == KUBERNETES_PROVIDER]
        assert [p.name for p in providers] == [f"{name}-kubernetes"]


def test_cluster_resources_go_through_the_platforms_explicit_providers(prod):
    aws_provider = one(prod.of_type(AWS_PROVIDER), "aws")
    openstack = one(prod.of_type(OPENSTACK_PROVIDER))
    for cluster in ("A", "C"):
        real = [r for r in descendants(prod, component(prod, cluster)).resources if r.custom]
        magnum = [r for r in real if r.type.startswith("openstack:")]
        assert len(magnum) == 2
        assert all(r.provider and r.provider.startswith(openstack.urn) for r in magnum)
    for cluster in ("B", "A-eks"):
        below = descendants(prod, component(prod, cluster)).resources
        real = [r for r in below if r.type.startswith("aws:")]
        assert {r.type for r in real} >= {EKS_CLUSTER, EKS_NODE_GROUP, IAM_ROLE, IAM_OIDC_PROVIDER}
        assert all(r.provider and r.provider.startswith(aws_provider.urn) for r in real)


def test_eks_node_groups_and_subnets_come_from_config(prod):
    config = parse(raw_of())
    groups = {r.name: r.inputs for r in prod.of_type(EKS_NODE_GROUP)}
    assert set(groups) == {"B-general", "A-eks-twin"}
    general = groups["B-general"]
    assert general["instanceTypes"] == ["m6i.xlarge", "m6a.xlarge"]
    assert general["scalingConfig"] == {"minSize": 3, "desiredSize": 4, "maxSize": 12}
    assert general["subnetIds"] == list(config.aws.subnet_ids)
    cluster = one(prod.of_type(EKS_CLUSTER), "B")
    assert cluster.inputs["vpcConfig"]["subnetIds"] == list(config.aws.subnet_ids)


# --- secrets ------------------------------------------------------------------------------------


def test_every_kubeconfig_reaches_its_consumers_as_a_secret(prod):
    providers = prod.of_type(KUBERNETES_PROVIDER)
    assert len(providers) == 5
    for provider in providers:
        assert rpc.is_rpc_secret(provider.inputs["kubeconfig"]), provider.name
    drain = one(prod.of_type(DRAIN))
    assert rpc.is_rpc_secret(drain.inputs["kubeconfig"])


def test_exports_name_clusters_and_hold_kubeconfigs_only_as_a_secret(prod):
    # The EKS kubeconfig text is known even under mocks, so its absence below means something.
    eks = unwrap(prod.named("B-kubernetes").inputs["kubeconfig"])
    assert "get-token" in eks
    exported = json.dumps(prod.outputs, default=str)
    assert "get-token" not in exported
    # For tools.verify, which reads them with --show-secrets; synth shows a secret redacted.
    assert prod.outputs["kubeconfigs"] == "[secret]"
    without = {k: v for k, v in prod.outputs.items() if k != "kubeconfigs"}
    assert "kubeconfig" not in json.dumps(without, default=str).lower()
    for cluster in prod.outputs["clusters"].values():
        assert set(cluster) <= {"kind", "endpoint", "twinOf"}


def test_fleet_exposes_every_cluster_by_name_with_a_secret_kubeconfig():
    """The handle Prods will use: `fleet.by_name["A-eks"].provider` and friends."""
    config = parse(raw_of())
    seen: dict[str, Any] = {}

    class Mocks(pulumi.runtime.Mocks):
        def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
            return f"{args.name}-id", dict(args.inputs)

        def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, None]:
            return {}, None

    @pulumi.runtime.test
    def build() -> None:
        fleet = ClusterFleet("fleet", ClusterFleetArgs(config))
        seen["kinds"] = {name: h.kind for name, h in fleet.by_name.items()}
        seen["providers"] = {type(h.provider).__name__ for h in fleet.by_name.values()}
        seen["secret"] = {
            name: _sync_await(h.kubeconfig.is_secret()) for name, h in fleet.by_name.items()
        }

    def run() -> None:
        pulumi.runtime.set_mocks(Mocks(), project="hybrid-infra", stack="prod", preview=False)
        build()

    contextvars.Context().run(run)
    assert seen["kinds"] == {"A": "onprem", "B": "eks", "C": "onprem", "G": "gke", "A-eks": "eks"}
    assert list(seen["kinds"]) == list(fleet.clusters(config))
    assert seen["providers"] == {"Provider"}
    assert all(seen["secret"].values()), seen["secret"]


# --- protection ---------------------------------------------------------------------------------


def test_prod_protects_clusters_but_never_the_cattle_that_replacement_must_delete(prod, synth):
    for kind, type_ in CLUSTER_RESOURCES.items():
        assert all(r.protect for r in prod.of_type(type_)), kind
    cattle = (GKE_NODE_POOL, DRAIN, EKS_NODE_GROUP, MAGNUM_TEMPLATE)
    for type_ in cattle:
        assert prod.of_type(type_), type_
        assert not any(r.protect for r in prod.of_type(type_)), type_
    dev = synth("dev")
    assert dev.of_type(CLUSTER_RESOURCES["onprem"])
    assert not any(r.protect for r in dev.resources if r.type in CLUSTER_RESOURCES.values())


# --- GKE node pools -----------------------------------------------------------------------------


def test_each_node_pool_has_a_drain_that_depends_on_it(prod):
    pools = prod.of_type(GKE_NODE_POOL)
    assert pools
    for pool in pools:
        drains = [d for d in prod.of_type(DRAIN) if d.inputs["pool_name"] == pool.inputs["name"]]
        drain = one(drains)
        assert pool.urn in drain.dependencies
        assert drain.parent == pool.parent
        assert drain.inputs["min_ready_nodes"] == 3
        assert drain.inputs["drain_timeout_seconds"] == 1200
        assert drain.inputs["provider_version"]


def test_pool_name_carries_version_and_deploy_id(prod):
    pool = one(prod.of_type(GKE_NODE_POOL))
    assert pool.inputs["name"] == "g-1-35-8-gke-1225000-r43"
    assert pool.inputs["version"] == "1.35.8-gke.1225000"
    assert pool.inputs["management"] == {"autoRepair": True, "autoUpgrade": False}
    cluster = one(prod.of_type(GKE_CLUSTER))
    assert cluster.inputs["removeDefaultNodePool"] is True
    assert cluster.inputs["releaseChannel"] == {"channel": "UNSPECIFIED"}


def test_new_pool_version_renames_the_pool_and_nothing_deletes_before_replacing(prod):
    def new_version(raw: dict[str, Any]) -> None:
        raw["clusters"]["G"]["nodePool"].update(version="1.35.9-gke.1100000", deployId="r43")

    upgraded = synth_with(new_version)
    before = one(prod.of_type(GKE_NODE_POOL))
    after = one(upgraded.of_type(GKE_NODE_POOL))
    # Same logical resource, new physical name: the engine must replace the pool.
    assert after.urn == before.urn
    assert after.inputs["name"] == "g-1-35-9-gke-1100000-r43" != before.inputs["name"]
    assert one(upgraded.of_type(DRAIN)).inputs["pool_name"] == after.inputs["name"]
    for result in (prod, upgraded):
        for type_ in (GKE_NODE_POOL, DRAIN):
            assert result.of_type(type_)
            assert not any(r.delete_before_replace for r in result.of_type(type_)), type_


def test_native_blue_green_keeps_the_pool_name_and_sets_gke_upgrade_settings():
    def blue_green(version: str) -> Callable[[dict[str, Any]], None]:
        def mutate(raw: dict[str, Any]) -> None:
            raw["clusters"]["G"]["upgrade"] = "blue-green"
            raw["clusters"]["G"]["blueGreen"] = {
                "soakDurationSeconds": 1800,
                "batchPercentage": 0.25,
            }
            raw["clusters"]["G"]["nodePool"]["version"] = version

        return mutate

    pools = []
    for version in ("1.35.8-gke.1225000", "1.35.9-gke.1100000"):
        result = synth_with(blue_green(version))
        pools.append(one(result.of_type(GKE_NODE_POOL)))
    assert pools[0].inputs["name"] == pools[1].inputs["name"] == "g-pool-r43"
    assert [p.inputs["version"] for p in pools] == ["1.35.8-gke.1225000", "1.35.9-gke.1100000"]
    settings = pools[0].inputs["upgradeSettings"]
    assert settings["strategy"] == "BLUE_GREEN"
    assert settings["blueGreenSettings"]["nodePoolSoakDuration"] == "1800s"
    rollout = settings["blueGreenSettings"]["standardRolloutPolicy"]
    assert rollout["batchPercentage"] == 0.25
    assert "batchNodeCount" not in rollout


def test_blue_green_with_two_batch_policies_is_a_config_error_with_its_key_path():
    def both(raw: dict[str, Any]) -> None:
        raw["clusters"]["G"]["upgrade"] = "blue-green"
        raw["clusters"]["G"]["blueGreen"] = {"batchPercentage": 0.5, "batchNodeCount": 2}

    with pytest.raises(ProgramFailed) as failed:
        synth_with(both)
    assert isinstance(failed.value.cause, ConfigError)
    assert failed.value.cause.problems == [
        "hybrid-infra:clusters.G.blueGreen: give batchPercentage or batchNodeCount, not both"
    ]
    assert failed.value.registered == ()


def test_pool_names_follow_gke_naming_rules():
    spec = GkeClusterSpec.model_validate(
        {
            "kind": "gke",
            "project": "hybrid-prod-31337",
            "location": "asia-northeast1",
            "kubernetesVersion": "1.30",
            "nodePool": {"version": "1.30"},
        }
    )
    assert node_pool_name("G", spec) == "g-1-30"
    assert node_pool_name("Games_EU", spec) == "games-eu-1-30"


# --- GKE: least privilege (mocks: the program's shape) --------------------------------------

NODE_ACCOUNT = "gke-nodes-g@hybrid-prod-31337.iam.gserviceaccount.com"


def test_gke_nodes_run_as_their_own_service_account_holding_only_the_node_role(prod):
    account = one(prod.of_type(GCP_SERVICE_ACCOUNT))
    assert account.inputs["accountId"] == "gke-nodes-g"
    assert account.inputs["project"] == "hybrid-prod-31337"
    grant = one(prod.of_type(GCP_PROJECT_IAM_MEMBER))
    assert grant.inputs == {
        "project": "hybrid-prod-31337",
        "role": "roles/container.defaultNodeServiceAccount",
        "member": f"serviceAccount:{NODE_ACCOUNT}",
    }
    assert account.urn in grant.dependencies
    for pool in prod.of_type(GKE_NODE_POOL):
        node = pool.inputs["nodeConfig"]
        assert node["serviceAccount"] == NODE_ACCOUNT
        # With its own account, IAM alone limits the nodes; the scope only lets IAM decide.
        assert node["oauthScopes"] == ["https://www.googleapis.com/auth/cloud-platform"]
        assert grant.urn in pool.dependencies, "nodes start once their account holds its role"


@pytest.mark.parametrize("upgrade", ["pool-per-version", "blue-green"])
def test_gke_pods_get_workload_identity_and_never_the_nodes_credentials(upgrade):
    result = synth_with(lambda raw: raw["clusters"]["G"].update(upgrade=upgrade))
    cluster = one(result.of_type(GKE_CLUSTER))
    assert cluster.inputs["workloadIdentityConfig"] == {
        "workloadPool": "hybrid-prod-31337.svc.id.goog"
    }
    pool = one(result.of_type(GKE_NODE_POOL))
    assert pool.inputs["nodeConfig"]["workloadMetadataConfig"] == {"mode": "GKE_METADATA"}


def test_gke_nodes_are_private_and_the_control_plane_admits_only_its_authorized_networks(prod):
    cluster = one(prod.of_type(GKE_CLUSTER))
    assert cluster.inputs["privateClusterConfig"] == {"enablePrivateNodes": True}
    assert cluster.inputs["masterAuthorizedNetworksConfig"] == {
        "cidrBlocks": [{"cidrBlock": "203.0.113.64/27", "displayName": "authorizedNetworks[0]"}],
        "gcpPublicCidrsAccessEnabled": False,
    }


def test_a_gke_cluster_without_authorized_networks_is_a_config_error_naming_the_key():
    with pytest.raises(ProgramFailed) as failed:
        synth_with(lambda raw: raw["clusters"]["G"].pop("authorizedNetworks"))
    assert isinstance(failed.value.cause, ConfigError)
    assert failed.value.cause.problems == [
        "hybrid-infra:clusters.G.authorizedNetworks: the control plane admits only these "
        "networks and none is listed; give the on-prem egress ranges that run `pulumi up` and "
        "kubectl"
    ]
    assert failed.value.registered == ()


def test_a_cluster_name_too_long_for_its_node_service_account_is_a_config_error():
    raw = raw_of()
    raw["clusters"]["games-europe-west-prime"] = raw["clusters"].pop("G")
    # A short pool name (`<cluster>-pool-r43`), so that only the account's id is too long.
    raw["clusters"]["games-europe-west-prime"]["upgrade"] = "blue-green"
    with pytest.raises(ConfigError) as error:
        parse(raw)
    assert error.value.problems == [
        "hybrid-infra:clusters.games-europe-west-prime: the nodes' service account would be "
        "'gke-nodes-games-europe-west-prime'; IAM needs 6-30 lowercase letters, digits or hyphens "
        "starting with a letter (shorten the cluster name)"
    ]


# --- kubeconfigs ------------------------------------------------------------------------------


def test_eks_kubeconfig_gets_a_token_from_the_aws_cli_for_that_cluster():
    text = eks_kubeconfig(
        cluster_name="A-eks-1a2b3c",
        endpoint="https://ABC.gr7.ap-northeast-1.eks.amazonaws.com",
        ca_data="LS0tQ0E=",
        region="ap-northeast-1",
    )
    document = yaml.safe_load(text)
    cluster = document["clusters"][0]["cluster"]
    assert cluster == {
        "server": "https://ABC.gr7.ap-northeast-1.eks.amazonaws.com",
        "certificate-authority-data": "LS0tQ0E=",
    }
    command = document["users"][0]["user"]["exec"]
    assert command["command"] == "aws"
    assert command["args"] == [
        "eks",
        "get-token",
        "--cluster-name",
        "A-eks-1a2b3c",
        "--region",
        "ap-northeast-1",
    ]
    assert document["current-context"] == "A-eks-1a2b3c"


def test_gke_kubeconfig_uses_https_and_the_gcloud_plugin():
    document = yaml.safe_load(
        gke_kubeconfig(context="gke_p_l_g", endpoint="34.1.2.3", ca_data="Q0E=")
    )
    assert document["clusters"][0]["cluster"]["server"] == "https://34.1.2.3"
    assert document["users"][0]["user"]["exec"]["command"] == "gke-gcloud-auth-plugin"


def test_magnum_kubeconfig_is_the_providers_raw_config():
    assert magnum_kubeconfig({"raw_config": "apiVersion: v1\n", "host": "h"}) == "apiVersion: v1\n"
    assert magnum_kubeconfig(None) == ""


def test_native_blue_green_gets_an_update_timeout_that_outlasts_its_soaks():
    raw = raw_of()["clusters"]["G"]
    pool_per_version = GkeClusterSpec.model_validate(raw)
    assert blue_green_update_timeout(pool_per_version) is None
    blue_green = GkeClusterSpec.model_validate(
        {**raw, "upgrade": "blue-green", "blueGreen": {"soakDurationSeconds": 7200}}
    )
    minutes = int(blue_green_update_timeout(blue_green).removesuffix("m"))
    # Two hours of pool soak plus, per node batch, its soak and GKE's hour of draining.
    assert minutes * 60 > 7200 + 3 * (60 + 3600)
