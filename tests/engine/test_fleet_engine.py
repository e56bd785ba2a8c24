"""The real program's Kubernetes half through the real engine and the real kubernetes provider,
on real local clusters (devenv.kube): prod's Prods, routing and edge proxies on A, B and C.

What is real here: the Pulumi CLI and engine, the program (`__main__.py` at the repository root,
with the `local` stack of devenv/local/), the kubernetes provider plugin, kube-apiserver, the
controllers and the scheduler. What is not: no container runs (kwok marks Pods Ready), and no
cloud load balancer exists (a stand-in gives LoadBalancer Services an address).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from devenv import local_stack
from devenv.kube import LocalCluster
from tests.engine.conftest import Engine, engine_env

pytestmark = pytest.mark.engine

STACK = "local"
PROD_NAMESPACE_LABEL = "hybrid-infra/prod"


@pytest.fixture
def program(pulumi_bin: Path, control_plane_bin: Path, tmp_path: Path) -> Callable[..., Engine]:
    """`program(clusters, **overrides)` → the `local` stack of the real program on `clusters`."""

    def make(clusters: dict[str, LocalCluster], **overrides: Any) -> Engine:
        work = tmp_path / "local"
        local_stack.write_project(work)
        env = engine_env(pulumi_bin, tmp_path / "home", tmp_path / "state")
        env["PATH"] = f"{control_plane_bin}:{env['PATH']}"
        (tmp_path / "state").mkdir(exist_ok=True)
        local_stack.init_stack(
            [str(pulumi_bin / "pulumi")],
            work,
            STACK,
            {name: c.kubeconfig for name, c in clusters.items()},
            env,
            overrides,
        )
        return Engine(pulumi_bin, work, env)

    return make


def steps(engine: Engine, *args: str) -> list[tuple[str, str]]:
    """`pulumi up` with the engine's own step record: (op, urn) of every step it took."""
    log = engine.work_dir / "events.jsonl"
    log.unlink(missing_ok=True)
    engine.run("up", "--yes", "--skip-preview", "--event-log", str(log), *args)
    return step_ops(log)


def step_ops(log: Path) -> list[tuple[str, str]]:
    taken = []
    for line in log.read_text().splitlines():
        event = json.loads(line)
        pre = event.get("resourcePreEvent")
        if pre:
            meta = pre["metadata"]
            taken.append((meta["op"], meta["urn"]))
    return taken


def changed(taken: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(op, urn) for op, urn in taken if op not in ("same", "read", "refresh")]


def deployments(cluster: LocalCluster, namespace: str | None = None) -> dict[str, dict[str, Any]]:
    path = (
        f"/apis/apps/v1/namespaces/{namespace}/deployments"
        if namespace
        else ("/apis/apps/v1/deployments")
    )
    return {
        f"{d['metadata']['namespace']}/{d['metadata']['name']}": d
        for d in cluster.request("GET", path)["items"]
    }


def wait_for(done: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"{what}: not done after {timeout:.0f} s"
        time.sleep(0.5)


def available(deployment: dict[str, Any]) -> bool:
    return any(
        c["type"] == "Available" and c["status"] == "True"
        for c in deployment.get("status", {}).get("conditions", [])
    )


@pytest.fixture
def clusters(fresh_clusters: Callable[..., dict[str, LocalCluster]]) -> dict[str, LocalCluster]:
    return fresh_clusters("A", "B", "C")


def on_cluster(engine: Engine, cluster: str) -> set[str]:
    """URNs of the resources in state that go through cluster `cluster`'s provider."""
    provider = f"::{cluster}-kubernetes::"
    return {r["urn"] for r in engine.resources().values() if provider in (r.get("provider") or "")}


def prod_steps(taken: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(op, urn) for op, urn in changed(taken) if "hybrid-infra:prod:Prod$" in urn]


def replica_sets(clusters: dict[str, LocalCluster]) -> set[str]:
    return {
        f"{rs['metadata']['namespace']}/{rs['metadata']['name']}"
        for cluster in clusters.values()
        for rs in cluster.request("GET", "/apis/apps/v1/replicasets")["items"]
        if rs["spec"].get("replicas")
    }


def all_available(clusters: dict[str, LocalCluster]) -> None:
    """The provider awaited each rollout; since then the autoscalers may have raised the
    replicas (from 1 to minReplicas), which the next seconds roll out."""
    for name, cluster in clusters.items():
        assert deployments(cluster), f"nothing deployed on {name}"
        wait_for(lambda c=cluster: all(available(d) for d in deployments(c).values()), name)


def assert_routing_only(taken: list[tuple[str, str]]) -> None:
    """A routing change: no Prod is touched, some proxy or routing table is, and every new
    config exists before the old one goes (never delete-before-replace)."""
    assert prod_steps(taken) == [], prod_steps(taken)
    edge = [urn for _, urn in changed(taken) if "-edge" in urn or "-routing" in urn]
    assert edge, changed(taken)
    order = {(op, urn): i for i, (op, urn) in enumerate(taken)}
    for op, urn in taken:
        if op == "delete-replaced":
            assert order.get(("create-replacement", urn), 1 << 30) < order[(op, urn)], urn


def assert_mounted_configs_exist(clusters: dict[str, LocalCluster]) -> None:
    for cluster in clusters.values():
        for deployment in deployments(cluster, "hybrid-infra-edge").values():
            for volume in deployment["spec"]["template"]["spec"].get("volumes", []):
                config_map = volume.get("configMap", {}).get("name")
                if config_map:
                    cluster.request(
                        "GET", f"/api/v1/namespaces/hybrid-infra-edge/configmaps/{config_map}"
                    )


def test_the_fleet_from_empty_through_a_rollback_a_drain_a_refresh_and_destroy(program, clusters):
    """One stack's life, each step what an operator types: `up` from empty, a no-op `up`, a
    rollback written by `tools.release.waves --rollback`, a drain, a refresh, `destroy`."""
    engine = program(clusters)
    engine.up()
    outputs = engine.outputs()
    planned = {p["prod"] for wave in outputs["releasePlan"]["waves"] for p in wave["prods"]}
    assert planned == {"A-1", "A-2", "B-1", "B-2", "C-1", "C-2"}
    all_available(clusters)
    assert changed(steps(engine)) == []  # a no-op `up` takes no step

    # A rollback: the waves tool moves the new version's segments, the `up` only reroutes.
    rollback = subprocess.run(
        [sys.executable, "-m", "tools.release.waves", "--stack", STACK, "--root",
         str(engine.work_dir), "--rollback"],
        capture_output=True, text=True, env=engine.env, cwd=local_stack.ROOT,
    )  # fmt: skip
    assert rollback.returncode == 0, rollback.stdout + rollback.stderr
    assert_routing_only(steps(engine))
    assert_mounted_configs_exist(clusters)

    # A drain: `preview` shows the real provider's diff of the routing document.
    stack_file = engine.work_dir / f"Pulumi.{STACK}.yaml"
    local_stack.edit_config(stack_file, "clusters.C.drained", True)
    preview = engine.preview()
    assert "kubernetes:core/v1:ConfigMap" in preview and "routing.json" in preview
    assert_routing_only(steps(engine))
    assert_mounted_configs_exist(clusters)

    # A refresh reads what the autoscalers changed (replica counts); the provider then
    # proposes an update of those Deployments with no field of ours changed. Applying it
    # leaves every Pod where it is (the same ReplicaSets serve); then the stack is at rest.
    serving = replica_sets(clusters)
    engine.run("refresh", "--yes")
    engine.up()
    assert replica_sets(clusters) == serving
    engine.run("preview", "--expect-no-changes")

    engine.run("destroy", "--yes")
    for cluster in clusters.values():
        left = [
            n["metadata"]["name"]
            for n in cluster.request("GET", "/api/v1/namespaces")["items"]
            if n["metadata"]["name"].startswith(("prod-", "hybrid-infra"))
            and not n["metadata"].get("deletionTimestamp")
        ]
        assert left == [], left


def test_draining_a_dead_cluster_writes_nothing_to_it_and_the_others_roll(program, clusters):
    engine = program(clusters)
    engine.up()
    dead = on_cluster(engine, "C")
    assert dead, "nothing on C to protect"
    clusters["C"].stop_apiserver()

    local_stack.edit_config(engine.work_dir / f"Pulumi.{STACK}.yaml", "clusters.C.drained", True)
    taken = steps(engine)
    touched = [(op, urn) for op, urn in changed(taken) if urn in dead]
    assert touched == [], touched
    assert [urn for _, urn in changed(taken) if urn in on_cluster(engine, "A")], (
        "A's proxies did not roll"
    )


def test_a_cluster_without_the_operators_crds_fails_on_its_monitoring_only(program, fresh_clusters):
    """C says it runs the Prometheus operator but has none of its CRDs: the kubernetes
    provider refuses C's alert rules and PodMonitors with its own error. Routing and proxies
    wait only for the Prods' Deployments and Services, never for their monitoring."""
    clusters = fresh_clusters("A", "B", "C", monitoring=("A", "B"))
    engine = program(clusters)
    failed = engine.run("up", "--yes", "--skip-preview", check=False)
    shown = failed.stdout + failed.stderr
    assert failed.returncode != 0
    assert "monitoring.coreos.com/v1" in shown, shown[-3000:]
    created = {r["urn"].rsplit("::", 1)[-1] for r in engine.resources().values()}
    assert not {"C-1-alerts", "C-2-alerts"} & created
    assert {"A-1-deployment", "B-2-deployment"} <= created
