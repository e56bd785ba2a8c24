"""The prod stack's Kubernetes objects, hardened, as others see them:

- kube-score (a third-party checker, built from its Go module by scripts/kube-score.sh) finds
  nothing about security contexts, NetworkPolicies, resources or probes;
- the NetworkPolicies, read with Kubernetes' semantics, admit exactly the platform's paths;
- the real kube-apiserver's Pod Security admission admits the Pods in their `restricted`
  namespaces, and refuses them without `runAsNonRoot`;
- the real HAProxy serves as the proxies' user on a read-only root filesystem.

The objects come from the real program under mocks (the program's shape), as `tools.synth`
records them.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from devenv.haproxy import HAPROXY
from devenv.kube import LocalCluster
from devenv.processes import free_port, stop
from tests.fixtures.go_built import go_built
from tests.support.synthesis import (
    CONFIGMAP,
    DEPLOYMENT,
    EDGE_PROXY,
    NAMESPACE,
    NETWORK_POLICY,
    PROD,
    one,
    provider_urn,
)
from tools.synth import Registered, Synthesis, synthesize

KUBE_SCORE_ENV = "HYBRID_INFRA_KUBE_SCORE"
KUBE_SCORE_FLAGS = ["--enable-optional-test", "container-seccomp-profile"]
KUBE_SCORE_FLAGS += ["--kubernetes-version", "v1.34"]
# The checks of the four kinds the hardening is about, by kube-score's ids (README_CHECKS.md).
HARDENING_CHECKS = {
    "container-security-context-user-group-id": "security context",
    "container-security-context-privileged": "security context",
    "container-security-context-readonlyrootfilesystem": "security context",
    "container-seccomp-profile": "security context",
    "pod-networkpolicy": "network policy",
    "networkpolicy-targets-pod": "network policy",
    "container-resources": "resources",
    "container-ephemeral-storage-request-and-limit": "resources",
    "pod-probes": "probes",
    "pod-probes-identical": "probes",
}
PROXY_CPU_LIMIT = ("container-resources", "CPU limit is not set")
"""The one accepted: the proxies have no CPU limit on purpose (components/edge_proxy.py)."""
STILL_REPORTED = {
    "container-image-pull-policy": "ImagePullPolicy is not set to Always",
    "deployment-has-host-podantiaffinity": "Deployment does not have a host podAntiAffinity set",
}
"""What kube-score still reports, and docs/prods.md says why each is accepted."""


@pytest.fixture(scope="module")
def prod() -> Synthesis:
    return synthesize("prod")


@pytest.fixture(scope="module")
def kube_score() -> Path:
    """The kube-score binary (scripts/kube-score.sh; scripts/test.sh builds it beforehand)."""
    return go_built(KUBE_SCORE_ENV, "kube-score.sh", "the kube-score tests")


def manifests(result: Synthesis) -> dict[str, list[dict[str, Any]]]:
    """The Kubernetes objects the program declares, per cluster (its provider), as manifests."""
    clusters: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for resource in result.resources:
        if resource.custom and resource.type.startswith("kubernetes:"):
            cluster = (provider_urn(resource) or "").rsplit("::", 1)[-1]
            clusters[cluster.removesuffix("-kubernetes")].append(manifest(resource))
    return dict(clusters)


def manifest(resource: Registered) -> dict[str, Any]:
    """A resource's inputs as the API takes them: the mocks hand every number over as a float
    (the engine's wire form), and integer fields refuse `8080.0`."""

    def whole(value: Any) -> Any:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, dict):
            return {k: whole(v) for k, v in value.items()}
        if isinstance(value, list):
            return [whole(v) for v in value]
        return value

    return whole(copy.deepcopy(dict(resource.inputs)))


@dataclass(frozen=True)
class Finding:
    check: str
    object: str
    comment: str


def score(binary: Path, objects: list[dict[str, Any]], workdir: Path) -> list[Finding]:
    """Every comment of every check kube-score grades below OK, on one cluster's objects."""
    path = workdir / f"manifests-{uuid.uuid4().hex[:8]}.yaml"
    path.write_text(yaml.safe_dump_all(objects, sort_keys=False))
    done = subprocess.run(
        [str(binary), "score", "-o", "json", *KUBE_SCORE_FLAGS, str(path)],
        capture_output=True,
        text=True,
    )
    # Exit 1 means "found something critical"; anything else is kube-score failing.
    assert done.returncode in (0, 1), done.stderr
    found = []
    for scored in json.loads(done.stdout):
        meta = scored["object_meta"]
        name = f"{scored['type_meta']['kind']} {meta.get('namespace', '')}/{meta['name']}"
        for check in scored["checks"]:
            if check["skipped"] or check["grade"] >= 10:  # 10: all OK
                continue
            for comment in check["comments"] or [{"summary": ""}]:
                found.append(Finding(check["check"]["id"], name, comment["summary"]))
    return found


def test_kube_score_finds_nothing_about_security_network_policy_resources_or_probes(
    prod, kube_score, tmp_path
):
    by_cluster = manifests(prod)
    assert set(by_cluster) == {"A", "B", "C"}
    for cluster, objects in by_cluster.items():
        findings = score(kube_score, objects, tmp_path)
        hardening = [f for f in findings if f.check in HARDENING_CHECKS]
        accepted = [f for f in hardening if (f.check, f.comment) == PROXY_CPU_LIMIT]
        assert [f for f in hardening if f not in accepted] == [], cluster
        assert {f.object for f in accepted} == {"Deployment hybrid-infra-edge/edge-proxy"}
        others = {(f.check, f.comment) for f in findings if f.check not in HARDENING_CHECKS}
        assert others <= set(STILL_REPORTED.items()), f"{cluster}: update docs/prods.md"


def test_kube_score_reports_each_kind_once_the_hardening_is_taken_away(prod, kube_score, tmp_path):
    """The check above is not vacuous: without securityContexts, NetworkPolicies, ephemeral
    storage and a distinct liveness probe, kube-score reports all four kinds."""
    objects = [o for o in manifests(prod)["A"] if o["kind"] != "NetworkPolicy"]
    for deployment in (o for o in objects if o["kind"] == "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        pod.pop("securityContext")
        for container in pod["containers"]:
            container.pop("securityContext")
            for limits in container["resources"].values():
                limits.pop("ephemeral-storage")
            container["livenessProbe"] = container["readinessProbe"]
    kinds = {HARDENING_CHECKS.get(f.check) for f in score(kube_score, objects, tmp_path)}
    assert kinds - {None} == {"security context", "network policy", "resources", "probes"}


# --- the NetworkPolicies, read with Kubernetes' semantics -------------------------------------


@dataclass(frozen=True)
class Pod:
    """A connection's end: a Pod (namespace, labels, ports by name) or an address outside."""

    ip: str
    namespace: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    ports: Mapping[str, int] = field(default_factory=dict)


def matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A LabelSelector: `matchLabels` and `matchExpressions` (In, NotIn, Exists, DoesNotExist)."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator = expression["key"], expression["operator"]
        value, values = labels.get(key), expression.get("values", [])
        held = {
            "In": key in labels and value in values,
            "NotIn": value not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[operator]
        if not held:
            return False
    return True


class Policies:
    """One cluster's NetworkPolicies, and what they admit (Kubernetes docs, "Network Policies":
    a Pod selected by a policy of a direction takes only what some such policy allows; a
    connection needs its source's egress and its destination's ingress)."""

    def __init__(self, policies: list[Registered]) -> None:
        self.policies = [(p.inputs["metadata"]["namespace"], p.inputs["spec"]) for p in policies]

    def allows(self, source: Pod, target: Pod, port: str | int, protocol: str = "TCP") -> bool:
        """A connection from `source` to `target`'s `port` (a number, or a name of its ports)."""
        number = target.ports[port] if isinstance(port, str) else port
        return self._admits("Egress", source, target, target, number, protocol) and self._admits(
            "Ingress", target, source, target, number, protocol
        )

    def _admits(
        self, kind: str, pod: Pod, peer: Pod, target: Pod, number: int, protocol: str
    ) -> bool:
        """Whether the policies of `pod` let it talk with `peer` in direction `kind`; a rule's
        named port is the target's port of that name."""
        if not pod.namespace:
            return True  # an address outside the cluster: no policy applies to it
        applying = [
            spec
            for namespace, spec in self.policies
            if namespace == pod.namespace
            and matches(spec["podSelector"], pod.labels)
            and kind in spec["policyTypes"]
        ]
        if not applying:
            return True
        side = "from" if kind == "Ingress" else "to"
        for spec in applying:
            for rule in spec.get(kind.lower(), []):
                peers = rule.get(side)
                if peers and not any(self._peer(p, peer, pod.namespace) for p in peers):
                    continue
                ports = rule.get("ports")
                if ports and not any(
                    p.get("protocol", "TCP") == protocol
                    and number in (p["port"], target.ports.get(p["port"]))
                    for p in ports
                ):
                    continue
                return True
        return False

    @staticmethod
    def _peer(rule: Mapping[str, Any], peer: Pod, namespace: str) -> bool:
        if "ipBlock" in rule:
            return ipaddress.ip_address(peer.ip) in ipaddress.ip_network(rule["ipBlock"]["cidr"])
        if not peer.namespace:
            return False
        if "namespaceSelector" in rule:
            names = {"kubernetes.io/metadata.name": peer.namespace}
            if not matches(rule["namespaceSelector"], names | NAMESPACE_LABELS[peer.namespace]):
                return False
        elif peer.namespace != namespace:
            return False
        return matches(rule.get("podSelector", {}), peer.labels)


NAMESPACE_LABELS: dict[str, dict[str, str]] = defaultdict(dict)
"""Labels of the namespaces the program creates, beyond their name (filled from a synthesis)."""
EDGE_LABELS = {"app.kubernetes.io/name": "edge-proxy", "app.kubernetes.io/part-of": "hybrid-infra"}
PROXY_A = Pod("10.244.1.10", "hybrid-infra-edge", EDGE_LABELS, {"http": 8080})
PROMETHEUS = Pod("10.244.2.10", "monitoring", {"app.kubernetes.io/name": "prometheus"})


def prod_pod(name: str, ip: str = "10.244.3.10") -> Pod:
    labels = {"app.kubernetes.io/name": "app", "hybrid-infra/prod": name}
    return Pod(ip, f"prod-{name.lower()}", labels, {"http": 8080})


@pytest.fixture(scope="module")
def cluster_a(prod) -> Policies:
    for namespace in prod.of_type(NAMESPACE):
        metadata = namespace.inputs["metadata"]
        NAMESPACE_LABELS[metadata["name"]] = metadata["labels"]
    on_a = [p for p in prod.of_type(NETWORK_POLICY) if provider_urn(p).endswith("A-kubernetes")]
    return Policies(on_a)


def test_the_proxies_reach_their_clusters_prods_and_nothing_else_in_the_cluster(cluster_a):
    a1, a2 = prod_pod("A-1"), prod_pod("A-2", "10.244.3.11")
    stranger = Pod("10.244.4.10", "default", {"app.kubernetes.io/name": "edge-proxy"})
    assert cluster_a.allows(PROXY_A, a1, "http")
    assert cluster_a.allows(PROXY_A, a2, 8080)
    assert not cluster_a.allows(stranger, a1, "http"), "a look-alike in another namespace"
    assert not cluster_a.allows(a2, a1, "http"), "Prods do not call each other"
    assert not cluster_a.allows(PROXY_A, a1, 9090), "only the app's port"
    assert not cluster_a.allows(PROXY_A, Pod("10.244.4.11", "kube-system", {}), 10250)


def test_proxies_on_other_clusters_reach_a_prod_from_the_peer_networks_only(cluster_a):
    a1 = prod_pod("A-1")
    for node in ("172.17.5.20", "10.10.7.30"):  # on-prem and VPC nodes (edge.peerNetworks)
        assert cluster_a.allows(Pod(node), a1, "http")
    for elsewhere in ("192.168.1.20", "203.0.113.9"):
        assert not cluster_a.allows(Pod(elsewhere), a1, "http")
    remote_prod = "10.10.9.40"  # B-1's load balancer, in the peer networks
    assert cluster_a.allows(PROXY_A, Pod(remote_prod), 8080)
    assert not cluster_a.allows(PROXY_A, Pod("192.0.2.80"), 8080), "not outside them"
    assert not cluster_a.allows(PROXY_A, Pod(remote_prod), 22), "not on another port"


def test_prometheus_scrapes_the_prods_and_only_from_its_own_namespace(cluster_a):
    a1 = prod_pod("A-1")
    assert cluster_a.allows(PROMETHEUS, a1, "http")  # metrics are served on the app's port
    impostor = Pod("10.244.2.11", "default", {"app.kubernetes.io/name": "prometheus"})
    assert not cluster_a.allows(impostor, a1, "http")


def test_users_reach_the_proxies_and_the_workloads_reach_out_only_where_named(cluster_a):
    a1 = prod_pod("A-1")
    user = Pod("198.51.100.7")
    assert cluster_a.allows(user, PROXY_A, 8080)
    assert not cluster_a.allows(user, PROXY_A, 8081), "liveness is the kubelet's, on the node"
    assert not cluster_a.allows(user, a1, "http"), "users reach Prods through the proxies"
    for workload in (PROXY_A, a1):
        assert cluster_a.allows(workload, Pod("10.96.0.10"), 53, "UDP")
        assert not cluster_a.allows(workload, Pod("93.184.216.34"), 443)
    assert cluster_a.allows(a1, Pod("172.17.30.5"), 5432), "app.egress: the on-prem networks"
    assert not cluster_a.allows(a1, Pod("10.10.30.5"), 5432)


# --- Pod Security admission on a real kube-apiserver ------------------------------------------


def pod_manifest(deployment: Registered, namespace: str) -> dict[str, Any]:
    template = manifest(deployment)["spec"]["template"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "hardened",
            "namespace": namespace,
            "labels": template["metadata"]["labels"],
        },
        "spec": template["spec"],
    }


def create(cluster: LocalCluster, path: str, body: dict[str, Any]) -> tuple[int, str]:
    """POST `body` as a dry run: admission runs in full, nothing is stored or scheduled."""
    try:
        cluster.request("POST", f"{path}?dryRun=All", json.dumps(body).encode())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())["message"]
    return 201, ""


@pytest.mark.kube
def test_the_api_server_admits_the_pods_as_restricted_and_refuses_them_without_non_root(
    prod, local_clusters
):
    cluster = local_clusters["A"]
    owners = {
        "Prod": one_deployment(prod, PROD, "A-1"),
        "proxy": one_deployment(prod, EDGE_PROXY, "A-edge-proxy"),
    }
    for owner, deployment in owners.items():
        namespace = f"psa-{owner.lower()}-{uuid.uuid4().hex[:6]}"
        labels = {
            key: value
            for key, value in namespace_labels(prod, deployment).items()
            if key.startswith("pod-security.kubernetes.io/")
        }
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
        body = {"metadata": {"name": namespace, "labels": labels}}
        cluster.request("POST", "/api/v1/namespaces", json.dumps(body).encode())
        try:
            pods = f"/api/v1/namespaces/{namespace}/pods"
            pod = pod_manifest(deployment, namespace)
            assert create(cluster, pods, pod) == (201, ""), owner
            root = copy.deepcopy(pod)
            del root["spec"]["securityContext"]["runAsNonRoot"]
            del root["spec"]["securityContext"]["runAsUser"]
            status, message = create(cluster, pods, root)
            assert status == 403, owner
            assert 'violates PodSecurity "restricted:v1.34"' in message
            assert "runAsNonRoot != true" in message
            # Admitted for real, the scheduler places it and kwok (the kubelet here) runs it.
            cluster.request("POST", pods, json.dumps(pod).encode())
            assert running(cluster, namespace, "hardened"), owner
            # Its NetworkPolicies are valid objects too (no plugin here enforces them).
            for policy in siblings(prod, deployment, NETWORK_POLICY):
                body = manifest(policy) | {"metadata": {"name": "p", "namespace": namespace}}
                path = f"/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies"
                assert create(cluster, path, body) == (201, ""), policy.name
        finally:
            cluster.request("DELETE", f"/api/v1/namespaces/{namespace}")


def running(cluster: LocalCluster, namespace: str, name: str, seconds: float = 60) -> bool:
    """Whether the Pod becomes Ready; its scheduling condition says why not."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pod = cluster.request("GET", f"/api/v1/namespaces/{namespace}/pods/{name}")
        conditions = {c["type"]: c for c in pod["status"].get("conditions", [])}
        if conditions.get("Ready", {}).get("status") == "True":
            return True
        time.sleep(0.5)
    raise AssertionError(f"{namespace}/{name} not Ready: {pod['status']}")


def one_deployment(result: Synthesis, component_type: str, name: str) -> Registered:
    return one(result.children(one(result.of_type(component_type), name)), type_=DEPLOYMENT)


def siblings(result: Synthesis, resource: Registered, type_: str) -> list[Registered]:
    """The resources of `type_` beside `resource`, under the same component."""
    found = [r for r in result.resources if r.parent == resource.parent and r.type == type_]
    assert found, f"no {type_} beside {resource.name}"
    return found


def namespace_labels(result: Synthesis, deployment: Registered) -> dict[str, str]:
    """The labels the program gives the namespace `deployment` lives in, on its cluster."""
    name = deployment.inputs["metadata"]["namespace"]
    (namespace,) = [
        n
        for n in result.of_type(NAMESPACE)
        if n.inputs["metadata"]["name"] == name and n.provider == deployment.provider
    ]
    return dict(namespace.inputs["metadata"]["labels"])


# --- the real HAProxy, as the proxies' user, on a read-only root ------------------------------

needs_root_and_haproxy = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None or not Path(HAPROXY).exists(),
    reason="needs root (for a private read-only mount), unshare and haproxy "
    "(scripts/system-packages.sh)",
)


@pytest.fixture
def world_readable() -> Iterator[Path]:
    """A directory the proxies' user can read (pytest's own are root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="edge-ro-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def run_read_only(config: Path, user: int, group: int) -> subprocess.Popen[bytes]:
    """`haproxy -W -db` (the image's own command) as `user`, in a mount namespace whose root
    filesystem, /tmp included, is read-only."""
    command = (
        "mount -o remount,bind,ro / && cd / && exec setpriv "
        f"--reuid {user} --regid {group} --clear-groups {HAPROXY} -W -db -f {config}"
    )
    return subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", command],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def answer(port: int, path: str, seconds: float = 10) -> int:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as reply:
                return int(reply.status)
        except urllib.error.HTTPError as error:
            return int(error.code)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@needs_root_and_haproxy
def test_the_proxy_serves_as_its_own_user_with_nothing_writable(prod, world_readable):
    """HAProxy as the proxies' configured user on a read-only root: it starts, answers its
    liveness frontend and serves (503: no Prod runs here); the same run with one line that
    writes a file (a pid file in /tmp, writable by anyone otherwise) fails to start."""
    proxy = one_deployment(prod, EDGE_PROXY, "A-edge-proxy")
    context = manifest(proxy)["spec"]["template"]["spec"]["securityContext"]
    user, group = context["runAsUser"], context["runAsGroup"]
    assert user >= 10000 and group >= 10000
    configmap = one(prod.children(one(prod.of_type(EDGE_PROXY), "A-edge-proxy")), type_=CONFIGMAP)
    traffic, liveness = free_port(), free_port()
    text = configmap.inputs["data"]["haproxy.cfg"]
    text = text.replace("bind :8080", f"bind 127.0.0.1:{traffic}")
    text = text.replace("bind :8081", f"bind 127.0.0.1:{liveness}")
    config = world_readable / "haproxy.cfg"
    config.write_text(text)
    config.chmod(0o644)

    proxy_process = run_read_only(config, user, group)
    try:
        assert answer(liveness, "/livez") == 200
        assert answer(traffic, "/") == 503
        assert proxy_process.poll() is None
    finally:
        stop(proxy_process)

    config.write_text(text.replace("global\n", f"global\n    pidfile /tmp/edge-{traffic}.pid\n", 1))
    writer = run_read_only(config, user, group)
    output, _ = writer.communicate(timeout=20)
    assert writer.returncode != 0
    assert b"Cannot create pidfile" in output
