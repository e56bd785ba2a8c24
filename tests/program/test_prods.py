"""Prods over the real program and prod stack file (mocks: the program's shape): six Prods on
their clusters' providers, each a full copy; images follow the waves; the routing ConfigMap says
where each segment goes; a drained cluster moves users or fails early."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pulumi
import pytest

from components.prod import PROD_LABEL, VERSION_LABEL, load_balancer_address
from components.prod_fleet import EDGE_NAMESPACE, ROUTING_CONFIGMAP, ROUTING_KEY
from model.config import ConfigError, OnPremClusterSpec
from model.fleet import drained_clusters, twin_name, twin_spec
from model.release import release_plan
from model.service_exposure import reached_from_other_clusters
from model.stack import parse
from tests.fixtures.program import raw_of, synth_with
from tests.support.synthesis import (
    CONFIGMAP,
    DEPLOYMENT,
    EDGE_PROXY,
    HPA,
    KUBERNETES_PROVIDER,
    NAMESPACE,
    NETWORK_POLICY,
    PDB,
    POD_MONITOR,
    PROD,
    PROMETHEUS_RULE,
    SERVICE,
    children_by_type,
    one,
    provider_urn,
)
from tools.synth import ProgramFailed, Registered, Synthesis, snapshot, synthesize
from tools.synth.diff import diff, render_diff

WAVE_LABEL = "hybrid-infra/wave"


PROD_CLUSTERS = {"A-1": "A", "A-2": "A", "B-1": "B", "B-2": "B", "C-1": "C", "C-2": "C"}


@pytest.fixture(scope="module")
def prod() -> Synthesis:
    return synthesize("prod")


@pytest.fixture(scope="module")
def mid_release() -> Synthesis:
    """Prod at wave 2: C-2 and C-1 run 2.3.1, the others still 2.3.0."""
    return synth_with(lambda raw: raw["release"].update(wave=2))


def routing_document(result: Synthesis, cluster: str) -> dict[str, Any]:
    return json.loads(result.named(f"{cluster}-routing").inputs["data"][ROUTING_KEY])


# --- six full copies on the right clusters --------------------------------------------------


def test_six_prods_each_with_namespace_deployment_service_pdb_and_hpa(prod):
    assert sorted(r.name for r in prod.of_type(PROD)) == sorted(PROD_CLUSTERS)
    for name, cluster in PROD_CLUSTERS.items():
        below = prod.children(one(prod.of_type(PROD), name))
        expected = [NAMESPACE, DEPLOYMENT, SERVICE, PDB, HPA, PROMETHEUS_RULE, POD_MONITOR]
        expected += [NETWORK_POLICY, NETWORK_POLICY]
        assert sorted(r.type for r in below) == sorted(expected)
        for resource in below:
            assert resource.provider is not None
            assert provider_urn(resource) == prod.named(f"{cluster}-kubernetes").urn, resource
            assert resource.inputs["metadata"]["labels"][PROD_LABEL] == name


def test_rollouts_never_drop_a_ready_pod_and_surge_as_configured(prod):
    for name in PROD_CLUSTERS:
        spec = children_by_type(prod, PROD, name)[DEPLOYMENT].inputs["spec"]
        assert spec["strategy"]["type"] == "RollingUpdate"
        assert spec["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": "25%"}
        # The autoscaler owns the replica count.
        assert "replicas" not in spec


def test_pods_are_probed_on_the_health_path_with_requests_and_limits(prod):
    pod_spec = children_by_type(prod, PROD, "A-1")[DEPLOYMENT].inputs["spec"]["template"]["spec"]
    (container,) = pod_spec["containers"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["resources"] == {
        "requests": {"cpu": "250m", "memory": "256Mi", "ephemeral-storage": "128Mi"},
        "limits": {"cpu": "1", "memory": "512Mi", "ephemeral-storage": "1Gi"},
    }
    assert container["ports"][0]["containerPort"] == 8080


def test_a_slow_prod_leaves_rotation_long_before_liveness_would_restart_it(prod):
    """Readiness asks the health path; liveness only whether the server still accepts
    connections, and takes four times as long to act (kube-score: `pod-probes-identical`)."""
    for name in PROD_CLUSTERS:
        spec = children_by_type(prod, PROD, name)[DEPLOYMENT].inputs["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        readiness, liveness = container["readinessProbe"], container["livenessProbe"]
        assert "httpGet" not in liveness
        assert liveness["tcpSocket"] == {"port": "http"}

        def patience(probe: dict[str, Any]) -> int:
            return probe["periodSeconds"] * probe["failureThreshold"]

        assert patience(liveness) >= 4 * patience(readiness)


def test_pods_spread_over_zones_and_nodes_of_their_own_prod(prod):
    pod_spec = children_by_type(prod, PROD, "B-2")[DEPLOYMENT].inputs["spec"]["template"]["spec"]
    spread = {c["topologyKey"]: c for c in pod_spec["topologySpreadConstraints"]}
    assert set(spread) == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
    for constraint in spread.values():
        assert constraint["labelSelector"]["matchLabels"][PROD_LABEL] == "B-2"
        assert constraint["maxSkew"] == 1
    assert spread["kubernetes.io/hostname"]["nodeTaintsPolicy"] == "Honor"


def test_service_pdb_and_hpa_select_the_deployments_pods(prod):
    for name in PROD_CLUSTERS:
        found = children_by_type(prod, PROD, name)
        deployment = found[DEPLOYMENT].inputs
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector.items() <= pod_labels.items()
        assert VERSION_LABEL not in selector and WAVE_LABEL not in selector
        assert found[SERVICE].inputs["spec"]["selector"] == selector
        assert found[SERVICE].inputs["spec"]["ports"][0]["targetPort"] == "http"
        assert found[PDB].inputs["spec"]["selector"]["matchLabels"] == selector
        assert found[PDB].inputs["spec"]["maxUnavailable"] == 1
        hpa = found[HPA].inputs["spec"]
        assert hpa["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": deployment["metadata"]["name"],
        }
        assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 30)
        assert hpa["metrics"][0]["resource"]["target"] == {
            "type": "Utilization",
            "averageUtilization": 65,
        }
        namespaces = {found[t].inputs["metadata"]["namespace"] for t in (DEPLOYMENT, SERVICE, PDB)}
        assert namespaces == {found[NAMESPACE].inputs["metadata"]["name"]}


def test_image_tags_and_labels_follow_the_release_plan(mid_release):
    raw = raw_of()
    raw["release"]["wave"] = 2
    plan = release_plan(parse(raw))
    for name, planned in plan.prods.items():
        deployment = children_by_type(mid_release, PROD, name)[DEPLOYMENT].inputs
        template = deployment["spec"]["template"]
        (container,) = template["spec"]["containers"]
        assert container["image"] == f"registry.example.net/shop/web:{planned.version}"
        labels = template["metadata"]["labels"]
        assert labels[VERSION_LABEL] == planned.version
        # A Prod's wave moves with its segments (a rollback, a drain): a routing change
        # must never write to a Prod, so no object of it carries the wave.
        assert WAVE_LABEL not in labels
        assert WAVE_LABEL not in deployment["metadata"]["labels"]
    images = {
        n: children_by_type(mid_release, PROD, n)[DEPLOYMENT]
        .inputs["spec"]["template"]["spec"]["containers"][0]["image"]
        .rsplit(":", 1)[1]
        for n in PROD_CLUSTERS
    }
    assert images == {"C-2": "2.3.1", "C-1": "2.3.1"} | {
        n: "2.3.0" for n in ("A-1", "A-2", "B-1", "B-2")
    }


NEW_DIGEST, OLD_DIGEST = "sha256:" + "a1" * 32, "sha256:" + "b2" * 32


def test_a_version_pinned_by_digest_runs_that_image_and_labels_its_tag():
    def pinned(raw: dict[str, Any]) -> None:
        raw["release"].update(
            version=f"2.3.1@{NEW_DIGEST}", previousVersion=f"2.3.0@{OLD_DIGEST}", wave=2
        )

    result = synth_with(pinned)
    for name in PROD_CLUSTERS:
        template = children_by_type(result, PROD, name)[DEPLOYMENT].inputs["spec"]["template"]
        (container,) = template["spec"]["containers"]
        tag, digest = ("2.3.1", NEW_DIGEST) if name in ("C-1", "C-2") else ("2.3.0", OLD_DIGEST)
        assert container["image"] == f"registry.example.net/shop/web:{tag}@{digest}"
        assert template["metadata"]["labels"][VERSION_LABEL] == tag


@pytest.mark.parametrize(
    "version",
    [
        "2.3.1@sha256:" + "a1" * 31,
        "2.3.1@sha512:" + "a1" * 32,
        "2.3.1@" + "a1" * 32,
        "@" + NEW_DIGEST,
    ],
)
def test_a_version_with_a_malformed_digest_is_a_config_error(version):
    raw = raw_of()
    raw["release"]["version"] = version
    with pytest.raises(ConfigError) as error:
        parse(raw)
    (problem,) = error.value.problems
    assert problem.startswith(f"hybrid-infra:release.version: {version!r} must be an image tag")
    assert "2.3.1@sha256:<64 hex digits>" in problem


# --- hardened Pods --------------------------------------------------------------------------


EDGE_NAMESPACE_NAME = "hybrid-infra-edge"


RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "v1.34",
}


def workloads(result: Synthesis) -> dict[str, Registered]:
    """Every Deployment the program makes: each Prod's and each cluster's proxy, by owner."""
    found = {name: children_by_type(result, PROD, name)[DEPLOYMENT] for name in PROD_CLUSTERS}
    for cluster in "ABC":
        found[f"{cluster}-edge-proxy"] = children_by_type(
            result, EDGE_PROXY, f"{cluster}-edge-proxy"
        )[DEPLOYMENT]
    assert len(found) == len(result.of_type(DEPLOYMENT))
    return found


def test_every_namespace_the_program_creates_enforces_the_restricted_standard(prod):
    namespaces = prod.of_type(NAMESPACE)
    assert {n.inputs["metadata"]["name"] for n in namespaces} == {
        EDGE_NAMESPACE_NAME,
        *(f"prod-{p.lower()}" for p in PROD_CLUSTERS),
    }
    for namespace in namespaces:
        assert RESTRICTED.items() <= namespace.inputs["metadata"]["labels"].items(), namespace.name


def test_prods_and_proxies_run_as_their_own_users_on_a_read_only_root_without_a_token(prod):
    for owner, deployment in workloads(prod).items():
        pod = deployment.inputs["spec"]["template"]["spec"]
        user = 10099 if owner.endswith("edge-proxy") else 10001
        assert pod["automountServiceAccountToken"] is False, owner
        assert pod["securityContext"] == {
            "runAsNonRoot": True,
            "runAsUser": user,
            "runAsGroup": user,
            "seccompProfile": {"type": "RuntimeDefault"},
        }, owner
        (container,) = pod["containers"]
        assert container["securityContext"] == {
            "privileged": False,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        }, owner
        writable = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
        mounted = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
        if owner.endswith("edge-proxy"):
            # HAProxy writes nothing; its configuration is mounted read-only.
            assert not writable
            assert [m.get("readOnly") for m in container["volumeMounts"]] == [True]
        else:
            assert writable == {mounted["/tmp"]}


def test_each_workloads_user_group_and_writable_paths_come_from_its_config():
    def custom(raw: dict[str, Any]) -> None:
        raw["app"]["security"] = {
            "runAsUser": 20000,
            "runAsGroup": 20001,
            "writablePaths": ["/tmp", "/var/cache/shop"],
        }
        raw["edge"]["security"] = {"runAsUser": 30000, "runAsGroup": 30000, "writablePaths": []}

    for owner, deployment in workloads(synth_with(custom)).items():
        pod = deployment.inputs["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        ids = (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"])
        if owner.endswith("edge-proxy"):
            assert ids == (30000, 30000)
            continue
        assert ids == (20000, 20001)
        empty_dirs = {v["name"] for v in pod["volumes"] if v.get("emptyDir") == {}}
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert set(mounts) == {"/tmp", "/var/cache/shop"}
        assert set(mounts.values()) == empty_dirs


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        (("app", "security", "runAsUser"), 0, "app.security.runAsUser: Input should be greater"),
        (("app", "security", "writablePaths"), ["tmp"], "app.security.writablePaths[0]: String"),
        (("edge", "peerNetworks"), ["10.0.0.1/8"], "edge.peerNetworks[0]: Value error, '10.0"),
        (("app", "egress"), ["not-a-range"], "app.egress[0]: Value error, 'not-a-range'"),
    ],
)
def test_a_bad_hardening_setting_is_a_config_error_naming_its_key(key, value, problem):
    raw = raw_of()
    *parents, last = key
    target = raw
    for part in parents:
        target = target.setdefault(part, {})
    target[last] = value
    with pytest.raises(ConfigError) as error:
        parse(raw)
    (found,) = error.value.problems
    assert found.startswith(f"hybrid-infra:{problem}")


def test_each_namespace_denies_all_traffic_once_its_allowed_paths_exist(prod):
    """The allowing policy first: a default-deny created before it would cut a running
    workload off on the first `up` that adds them."""
    owners = [(PROD, name) for name in PROD_CLUSTERS]
    owners += [(EDGE_PROXY, f"{c}-edge-proxy") for c in "ABC"]
    for type_, owner in owners:
        component = one(prod.of_type(type_), owner)
        policies = [r for r in prod.children(component) if r.type == NETWORK_POLICY]
        by_name = {p.inputs["metadata"]["name"]: p for p in policies}
        deny = by_name.pop("default-deny")
        (allow,) = by_name.values()
        assert deny.inputs["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
        assert allow.urn in deny.dependencies, owner
        assert allow.inputs["spec"]["policyTypes"] == ["Ingress", "Egress"]
        namespace = {p.inputs["metadata"]["namespace"] for p in policies}
        assert namespace == {
            EDGE_NAMESPACE_NAME if type_ == EDGE_PROXY else f"prod-{owner.lower()}"
        }


# --- the routing table ----------------------------------------------------------------------


def test_routing_configmap_is_on_every_cluster_that_hosts_prods_and_only_there(prod):
    maps = [m for m in prod.of_type(CONFIGMAP) if m.name.endswith("-routing")]
    assert sorted(m.name for m in maps) == ["A-routing", "B-routing", "C-routing"]
    proxies = [m.name for m in prod.of_type(CONFIGMAP) if m.name.endswith("-edge-proxy-config")]
    assert sorted(proxies) == ["A-edge-proxy-config", "B-edge-proxy-config", "C-edge-proxy-config"]
    for cluster in ("A", "B", "C"):
        configmap = prod.named(f"{cluster}-routing")
        assert provider_urn(configmap) == prod.named(f"{cluster}-kubernetes").urn
        assert configmap.inputs["metadata"]["name"].startswith(f"{ROUTING_CONFIGMAP}-")
        assert configmap.inputs["immutable"] is True
        assert configmap.inputs["metadata"]["namespace"] == EDGE_NAMESPACE
        assert routing_document(prod, cluster) == prod.outputs["routing"]


def test_routing_sends_each_segment_to_its_prods_with_endpoints_and_weights(prod):
    segments = routing_document(prod, "C")["segments"]
    assert segments["enterprise"]["routes"] == [
        {
            "prod": "A-2",
            "cluster": "A",
            "endpoint": "http://app.prod-a-2.svc.cluster.local:8080",
            "weight": 50,
            "version": "2.3.1",
            "warming": False,
        },
        {
            "prod": "B-1",
            "cluster": "B",
            "endpoint": "http://app.prod-b-1.svc.cluster.local:8080",
            "weight": 50,
            "version": "2.3.1",
            "warming": False,
        },
    ]
    assert {s: [r["prod"] for r in v["routes"]] for s, v in segments.items()} == {
        "staff": ["C-2"],
        "trial": ["C-1"],
        "enterprise": ["A-2", "B-1"],
        "consumer-east": ["A-1"],
        "consumer-west": ["B-2"],
    }
    assert not any(v["moved"] for v in segments.values())
    service = children_by_type(prod, PROD, "A-2")[SERVICE].inputs
    assert service["metadata"]["name"] == "app"
    assert service["metadata"]["namespace"] == "prod-a-2"


def test_a_prod_of_the_latest_wave_warms_up_where_a_steady_prod_shares_its_segment():
    def mutate(raw: dict[str, Any]) -> None:
        raw["release"]["wave"] = 2  # C-1 has just taken 2.3.1
        next(s for s in raw["segments"] if s["name"] == "trial")["prods"] = ["C-1", "A-2"]

    result = synth_with(mutate)
    routes = routing_document(result, "A")["segments"]["trial"]["routes"]
    assert {r["prod"]: r["warming"] for r in routes} == {"C-1": True, "A-2": False}
    config = result.named("A-edge-proxy-config").inputs["data"]["haproxy.cfg"]
    trial = config.split("backend segment_trial\n", 1)[1].split("\n\n", 1)[0]
    servers = {line.split()[1]: line for line in trial.splitlines() if "server " in line}
    assert servers["C-1"].endswith(" init-addr none") and "init-addr" not in servers["A-2"]
    assert config.count("init-addr none") == 1, "C-2 (wave 1) and lone Prods start at once"


def test_routing_waits_for_every_prod_to_be_rolled_out(prod):
    deployments = {r.urn for r in prod.of_type(DEPLOYMENT) if "edge-proxy" not in r.name}
    for cluster in ("A", "B", "C"):
        assert deployments <= set(prod.named(f"{cluster}-routing").dependencies)
        (edge,) = [r for r in prod.of_type(EDGE_PROXY) if r.name.startswith(cluster)]
        assert deployments <= set(edge.dependencies), "the proxy waits for the Prods too"


def test_release_plan_and_routing_are_exported_in_plain_text(prod):
    plan = prod.outputs["releasePlan"]
    assert [[p["prod"] for p in w["prods"]] for w in plan["waves"]] == [
        ["C-2"],
        ["C-1"],
        ["A-2", "B-1"],
        ["B-2", "A-1"],
    ]
    assert plan["wave"] == 4 and plan["version"] == "2.3.1"
    assert "[secret]" not in json.dumps([plan, prod.outputs["routing"]])
    assert "kubeconfig" not in json.dumps(prod.outputs["routing"]).lower()


# --- drained clusters -----------------------------------------------------------------------


def drain_a_with_room_on_g(raw: dict[str, Any]) -> None:
    raw["clusters"]["A"]["drained"] = True
    raw["prods"]["G-1"] = {"cluster": "G", "capacity": 10000}
    raw["clusters"]["G"]["capacity"] = 10000


def test_draining_a_moves_enterprise_to_b1_and_consumer_east_to_a_prod_with_room():
    result = synth_with(drain_a_with_room_on_g)
    routing = result.outputs["routing"]
    segments = routing["segments"]
    assert {"A", "A-eks"} <= set(routing["drainedClusters"])
    assert [(r["prod"], r["weight"]) for r in segments["enterprise"]["routes"]] == [("B-1", 100)]
    assert [(r["prod"], r["weight"]) for r in segments["consumer-east"]["routes"]] == [("G-1", 100)]
    assert segments["consumer-east"]["moved"] and segments["enterprise"]["moved"]
    assert not segments["consumer-west"]["moved"]
    # The Prods on A stay built, ready to take users back after the upgrade.
    assert {"A-1", "A-2"} <= {r.name for r in result.of_type(PROD)}
    # G now hosts a Prod, so it gets the routing table too.
    assert json.loads(result.named("G-routing").inputs["data"][ROUTING_KEY]) == routing


def test_draining_a_without_room_fails_before_any_resource_naming_the_segment():
    with pytest.raises(ProgramFailed) as failed:
        synth_with(lambda raw: raw["clusters"]["A"].update(drained=True))
    assert failed.value.registered == ()
    assert isinstance(failed.value.cause, ConfigError)
    (problem,) = failed.value.cause.problems
    assert problem.startswith(
        "hybrid-infra:clusters.A.drained: cannot re-place segment(s) consumer-east (8800 users)"
    )
    assert "2100 users on B-2" in problem


def test_a_twin_is_drained_with_its_cluster_as_the_fleet_builds_it():
    raw = raw_of()
    drain_a_with_room_on_g(raw)
    config = parse(raw)
    spec = config.clusters["A"]
    assert isinstance(spec, OnPremClusterSpec)
    assert twin_spec(spec).drained
    assert drained_clusters(config) == {"A", twin_name("A")}


# --- a dead cluster: its drain writes nothing to it ------------------------------------------


def with_room_on_g(raw: dict[str, Any]) -> None:
    """G-1 can take consumer-east (8800 users), so A may be drained."""
    raw["prods"]["G-1"] = {"cluster": "G", "capacity": 10000}
    raw["clusters"]["G"]["capacity"] = 10000


def on_clusters(snap: dict[str, Any], clusters: set[str]) -> set[str]:
    """Engine URNs of every resource whose provider is one of `clusters`' kubernetes providers."""
    providers = {
        urn
        for urn, r in snap["resources"].items()
        if r["type"] == KUBERNETES_PROVIDER and r["name"] in {f"{c}-kubernetes" for c in clusters}
    }
    assert len(providers) == len(clusters), providers
    return {urn for urn, r in snap["resources"].items() if r["provider"] in providers}


def snap_with(*mutations: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    def mutate(raw: dict[str, Any]) -> None:
        for mutation in mutations:
            mutation(raw)

    return snapshot.snapshot(synth_with(mutate))


def drain_a(raw: dict[str, Any]) -> None:
    raw["clusters"]["A"]["drained"] = True


def test_draining_a_dead_cluster_writes_nothing_to_it_and_rolls_every_other_proxy():
    """Under mocks this proves what the program declares, and the engine's `ignoreChanges`
    rule as `tools.synth.diff` applies it (the engine resets every ignored input to its
    recorded value before it diffs: `processIgnoreChanges` in pulumi/pulumi). It does not prove
    that the kubernetes provider copes with a cluster that does not answer.

    The real-engine test, with local clusters and A's API server stopped, must show:
    - `pulumi preview` and `pulumi up` with `clusters.A.drained: true` succeed;
    - no resource whose provider is A's (or A-eks's) has a create, update, replace or delete
      step: every one is "same", and A's kubernetes provider has no step either;
    - B's, C's and G's proxy ConfigMaps are replaced create-before-delete (new name first, old
      one deleted last), their Deployments roll, and their routing ConfigMaps change;
    - with A's API server back and `drained: false`, the next `up` updates A's routing ConfigMap
      and A's proxy (held back until then), and touches nothing else on A.
    """
    before, after = snap_with(with_room_on_g), snap_with(with_room_on_g, drain_a)
    changes = diff(before, after)
    on_a = on_clusters(after, {"A", "A-eks"})
    names = {after["resources"][urn]["name"] for urn in on_a}
    assert names >= {"A-1-deployment", "A-2-service", "A-edge", "A-routing", "A-edge-proxy"}
    # Nothing on A is created, changed or removed: every resource stays registered as it was.
    assert not changes.added and not changes.removed
    assert not {c.urn for c in changes.changed} & on_a
    # What the program would now write on A is held back until A is undrained.
    assert {c.name for c in changes.held} == {"A-routing", "A-edge-proxy-config", "A-edge-proxy"}
    assert {c.urn for c in changes.held} <= on_a
    # Every other proxy takes a new configuration (a new ConfigMap) and so rolls.
    rolled = {c.name: {x.path for x in c.changes} for c in changes.changed}
    for cluster in ("B", "C", "G"):
        assert "inputs.metadata.name" in rolled[f"{cluster}-edge-proxy-config"]
        assert (
            "inputs.spec.template.spec.volumes[0].configMap.name"
            in (rolled[f"{cluster}-edge-proxy"])
        )
        assert f"{cluster}-routing" in rolled
    assert render_diff(changes).endswith("3 held back by ignoreChanges\n")


def test_a_release_while_a_cluster_is_drained_reaches_only_the_other_clusters():
    """Wave 3 → 4 takes A-1 and B-2 to 2.3.1: B-2 rolls, A-1 waits for its cluster."""

    def wave(number: int) -> Callable[[dict[str, Any]], None]:
        return lambda raw: raw["release"].update(wave=number)

    before = snap_with(with_room_on_g, drain_a, wave(3))
    after = snap_with(with_room_on_g, drain_a, wave(4))
    changes = diff(before, after)
    image = "inputs.spec.template.spec.containers[0].image"
    assert image in {
        c.path for r in changes.changed if r.name == "B-2-deployment" for c in r.changes
    }
    held = {r.name: {c.path for c in r.changes} for r in changes.held}
    assert image in held["A-1-deployment"]
    assert not {c.urn for c in changes.changed} & on_clusters(after, {"A", "A-eks"})


def test_every_resource_on_a_drained_cluster_is_frozen_and_nothing_else():
    result = synth_with(lambda raw: (with_room_on_g(raw), drain_a(raw)))
    a = {prod_provider(result, c) for c in ("A", "A-eks")}
    for resource in result.resources:
        on_a = resource.provider is not None and provider_urn(resource) in a
        assert (resource.ignore_changes == ("*",)) == on_a, resource.name
    # The provider itself is left as it was: it needs no answer from A to be configured, and a
    # changed input of its own could replace it and with it everything on A.
    assert all(p.ignore_changes == () for p in result.of_type(KUBERNETES_PROVIDER))
    undrained = synth_with(with_room_on_g)
    assert not any(r.ignore_changes == ("*",) for r in undrained.resources)


def prod_provider(result: Synthesis, cluster: str) -> str:
    return result.named(f"{cluster}-kubernetes").urn


# --- reaching a Prod from another cluster ---------------------------------------------------


OPENSTACK_INTERNAL = {"service.beta.kubernetes.io/openstack-internal-load-balancer": "true"}


INTERNAL_LB = {
    "A": OPENSTACK_INTERNAL,
    "C": OPENSTACK_INTERNAL,
    "B": {
        "service.beta.kubernetes.io/aws-load-balancer-scheme": "internal",
        "service.beta.kubernetes.io/aws-load-balancer-internal": "true",
    },
    "G": {
        "networking.gke.io/load-balancer-type": "Internal",
        "networking.gke.io/internal-load-balancer-allow-global-access": "true",
    },
}


def proxy_config(result: Synthesis, cluster: str) -> str:
    return str(result.named(f"{cluster}-edge-proxy-config").inputs["data"]["haproxy.cfg"])


def test_every_prod_another_cluster_routes_to_has_an_internal_load_balancer_of_its_cloud():
    result = synth_with(with_room_on_g)
    for name, cluster in {**PROD_CLUSTERS, "G-1": "G"}.items():
        service = children_by_type(result, PROD, name)[SERVICE].inputs
        assert service["spec"]["type"] == "LoadBalancer", name
        assert service["metadata"]["annotations"] == INTERNAL_LB[cluster], name
        assert service["metadata"]["name"] == "app", "the proxies at home keep its cluster DNS"
        assert service["spec"]["ports"] == [{"name": "http", "port": 8080, "targetPort": "http"}]


def on_one_cluster(raw: dict[str, Any]) -> None:
    """Every Prod on B (enterprise no longer redundant): no proxy reaches another cluster."""
    for prod in raw["prods"].values():
        prod["cluster"] = "B"
    raw["clusters"]["B"]["capacity"] = 50000
    next(s for s in raw["segments"] if s["name"] == "enterprise")["prods"] = ["A-2"]
    raw["release"]["wave"] = 3  # no redundant tier any more: three waves


def test_prods_on_a_single_cluster_keep_a_cluster_ip_and_take_no_address():
    result = synth_with(on_one_cluster)
    for name in PROD_CLUSTERS:
        service = children_by_type(result, PROD, name)[SERVICE].inputs
        assert service["spec"]["type"] == "ClusterIP"
        assert "annotations" not in service["metadata"]
    raw = raw_of()
    on_one_cluster(raw)
    raw["edge"]["addresses"] = {"A-1": "a-1.example.net:8080"}
    with pytest.raises(ConfigError) as error:
        parse(raw)
    assert error.value.problems == [
        "hybrid-infra:edge.addresses.A-1: every Prod runs on one cluster, so no proxy reaches "
        "A-1 from another; remove the address"
    ]


def test_a_rollback_or_a_drain_creates_or_deletes_no_load_balancer():
    """Segment edits take seconds; a load balancer takes minutes, and a drained cluster none."""
    config = parse(raw_of())
    everyone = set(PROD_CLUSTERS)
    assert reached_from_other_clusters(config) == everyone
    staff_on_b1 = config.model_copy(
        update={"segments": tuple(s for s in config.segments if s.name != "staff")}
    )
    assert reached_from_other_clusters(staff_on_b1) == everyone, "C-2 serves no segment"
    raw = raw_of()
    with_room_on_g(raw)
    drain_a(raw)
    assert reached_from_other_clusters(parse(raw)) == everyone | {"G-1"}


def test_proxies_reach_a_prod_elsewhere_at_its_load_balancer_and_at_home_by_cluster_dns(prod):
    servers = {
        line.split()[1]: line.split()[2]
        for line in proxy_config(prod, "A").splitlines()
        if line.strip().startswith("server ")
    }
    assert servers["A-1"] == "app.prod-a-1.svc.cluster.local:8080"
    assert servers["B-1"] == "b-1-service.lb.mock:8080"
    assert servers["C-2"] == "c-2-service.lb.mock:8080"
    # The configuration waits for the load balancers it names (their addresses come from them).
    config = prod.named("A-edge-proxy-config")
    assert prod.named("B-1-service").urn in config.dependencies
    assert prod.named("A-1-service").urn not in config.dependencies


def test_an_address_in_edge_addresses_replaces_the_load_balancer_for_proxies_elsewhere():
    result = synth_with(lambda raw: raw["edge"].update(addresses={"B-1": "b-1.example.net:8080"}))
    config = proxy_config(result, "A")
    assert " b-1.example.net:8080 " in config and "b-1-service.lb.mock" not in config
    assert children_by_type(result, PROD, "B-1")[SERVICE].inputs["spec"]["type"] == "LoadBalancer"


def policy_of(result: Synthesis, type_: str, owner: str) -> dict[str, Any]:
    """The allowing NetworkPolicy's spec of a Prod or a proxy (not its default-deny)."""
    policies = [
        r
        for r in result.children(one(result.of_type(type_), owner))
        if r.type == NETWORK_POLICY and r.inputs["metadata"]["name"] != "default-deny"
    ]
    return one(policies).inputs["spec"]


def ip_blocks(peers: list[dict[str, Any]]) -> list[str]:
    return [p["ipBlock"]["cidr"] for p in peers if "ipBlock" in p]


def test_peer_networks_are_admitted_only_where_proxies_cross_clusters():
    """Across clusters: each Prod admits `edge.peerNetworks`, and each proxy reaches them on
    the port of every Prod elsewhere (an `edge.addresses` entry gives its own). On one
    cluster: neither, only the proxies' Pods by their labels."""
    peers = ["172.16.0.0/14", "10.10.0.0/16"]
    spread = synth_with(lambda raw: raw["edge"].update(addresses={"B-1": "b-1.example.net:9443"}))
    alone = synth_with(on_one_cluster)
    for name in PROD_CLUSTERS:
        (requests, _) = policy_of(spread, PROD, name)["ingress"]
        assert ip_blocks(requests["from"]) == peers
        (requests, _) = policy_of(alone, PROD, name)["ingress"]
        assert ip_blocks(requests["from"]) == []
    egress = {
        cluster: [
            (ip_blocks(rule["to"]), [p["port"] for p in rule["ports"]])
            for rule in policy_of(spread, EDGE_PROXY, f"{cluster}-edge-proxy")["egress"]
            if ip_blocks(rule.get("to", []))
        ]
        for cluster in "ABC"
    }
    assert egress == {
        "A": [(peers, [8080, 9443])],
        "B": [(peers, [8080])],
        "C": [(peers, [8080, 9443])],
    }
    for rule in policy_of(alone, EDGE_PROXY, "B-edge-proxy")["egress"]:
        assert rule.get("to") != [] and not ip_blocks(rule.get("to", [])), rule


def test_a_load_balancer_address_is_its_name_or_ip_and_none_is_an_error_naming_the_prod():
    def status(**ingress: str | None) -> SimpleNamespace:
        return SimpleNamespace(load_balancer=SimpleNamespace(ingress=[SimpleNamespace(**ingress)]))

    assert load_balancer_address("B-1", status(hostname="x.elb.aws", ip=None), 80) == "x.elb.aws:80"
    assert load_balancer_address("G-1", status(hostname=None, ip="10.3.0.7"), 80) == "10.3.0.7:80"
    # The kubernetes provider waits for the address; a controller that never gives one:
    with pytest.raises(pulumi.RunError) as error:
        load_balancer_address("A-1", SimpleNamespace(load_balancer=None), 8080)
    assert str(error.value).startswith("A-1: its internal load balancer has no address")
    assert "kubectl describe service app -n prod-a-1" in str(error.value)
    assert str(error.value).endswith("or give hybrid-infra:edge.addresses.A-1")


# --- the edge proxy's Kubernetes objects ----------------------------------------------------


def test_the_proxy_configuration_is_a_new_immutable_configmap_per_content(prod):
    """pulumi-kubernetes replaces a ConfigMap whose data changes. Under a fixed name it would
    delete the old one first, and a proxy Pod starting meanwhile could not mount it; a name per
    content is created first, the Deployment moves to it and rolls, the old one goes last."""
    names = {}
    moved = synth_with(lambda raw: raw["segments"][0].update(prods=["B-1"]))  # staff → B-1
    for result in (prod, moved):
        for cluster in "ABC":
            parts = children_by_type(result, EDGE_PROXY, f"{cluster}-edge-proxy")
            configmap = parts[CONFIGMAP]
            text = configmap.inputs["data"]["haproxy.cfg"]
            name = configmap.inputs["metadata"]["name"]
            assert name == "edge-proxy-" + hashlib.sha256(text.encode()).hexdigest()[:10]
            assert configmap.inputs["immutable"] is True
            assert not configmap.delete_before_replace
            (volume,) = parts[DEPLOYMENT].inputs["spec"]["template"]["spec"]["volumes"]
            assert volume["configMap"]["name"] == name
            names[(id(result), cluster)] = name
    assert len(set(names.values())) == 6, "another routing is another ConfigMap everywhere"


def test_proxy_pods_request_resources_spread_over_nodes_and_are_probed_apart(prod):
    for cluster in "ABC":
        parts = children_by_type(prod, EDGE_PROXY, f"{cluster}-edge-proxy")
        pod = parts[DEPLOYMENT].inputs["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["resources"] == {
            "requests": {"cpu": "100m", "memory": "256Mi", "ephemeral-storage": "64Mi"},
            "limits": {"memory": "256Mi", "ephemeral-storage": "256Mi"},
        }
        (spread,) = pod["topologySpreadConstraints"]
        assert spread["topologyKey"] == "kubernetes.io/hostname"
        assert spread["whenUnsatisfiable"] == "ScheduleAnyway"
        assert (
            spread["labelSelector"]["matchLabels"]
            == parts[DEPLOYMENT].inputs["spec"]["selector"]["matchLabels"]
        )
        assert container["readinessProbe"]["tcpSocket"] == {"port": 8080}
        assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": 8081}
        assert (
            container["livenessProbe"]["failureThreshold"]
            * container["livenessProbe"]["periodSeconds"]
            > 3 * container["readinessProbe"]["periodSeconds"]
        ), "liveness acts slower"
        config = parts[CONFIGMAP].inputs["data"]["haproxy.cfg"]
        assert "frontend liveness\n    bind :8081\n    monitor-uri /livez\n" in config


def test_the_proxy_service_is_internal_for_its_cloud_and_admits_only_the_source_ranges(prod):
    for cluster in "ABC":
        service = children_by_type(prod, EDGE_PROXY, f"{cluster}-edge-proxy")[SERVICE].inputs
        assert service["spec"]["type"] == "LoadBalancer"
        assert service["metadata"]["annotations"] == INTERNAL_LB[cluster]
        assert service["spec"]["loadBalancerSourceRanges"] == ["172.16.0.0/14", "10.10.0.0/16"]


def test_an_internet_facing_proxy_says_so_to_each_cloud_and_admits_anyone_without_ranges():
    def public(raw: dict[str, Any]) -> None:
        raw["edge"]["scheme"] = "internet-facing"
        del raw["edge"]["sourceRanges"]

    result = synth_with(public)
    annotations = {
        cluster: children_by_type(result, EDGE_PROXY, f"{cluster}-edge-proxy")[SERVICE]
        .inputs["metadata"]
        .get("annotations")
        for cluster in "ABC"
    }
    assert annotations == {
        "A": {"service.beta.kubernetes.io/openstack-internal-load-balancer": "false"},
        "B": {"service.beta.kubernetes.io/aws-load-balancer-scheme": "internet-facing"},
        "C": {"service.beta.kubernetes.io/openstack-internal-load-balancer": "false"},
    }
    service = children_by_type(result, EDGE_PROXY, "B-edge-proxy")[SERVICE].inputs
    assert "loadBalancerSourceRanges" not in service["spec"]
