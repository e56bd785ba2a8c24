"""The node-pool drain: planner properties (hypothesis), the Kubernetes shell against a fake API
server on 127.0.0.1, and one create -> delete lifecycle through the real dynamic-provider host.

Waiting is driven by a fake clock whose `sleep` advances time, so timeouts are reached in a few
requests and no test depends on (or asserts) wall-clock time.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from providers.node_pool_drain.kube import Eviction, KubeUnavailable, NodePoolApi
from providers.node_pool_drain.planner import (
    MAX_NAMED_PODS,
    Node,
    Pod,
    Skip,
    backoff_seconds,
    describe_pods,
    due,
    plan_drain,
    progress,
    readiness,
    skip_reason,
    to_cordon,
)
from providers.node_pool_drain.provider import (
    PROVIDER_VERSION,
    DrainTimedOut,
    NodePoolDrainProvider,
    NodesNotReady,
    drain_pool,
    wait_until_ready,
)
from tests.fakes.kube_api import FakeKubeApi
from tests.provider_host import ProviderHost, ProviderHostError

OLD, NEW = "g-1-30-5-gke-1014-r42", "g-1-30-6-gke-1100-r43"

# --- planner properties -------------------------------------------------------------------------

names = st.builds(
    lambda stem, n: f"{stem}-{n}", st.sampled_from(["web", "api", "log", "job"]), st.integers(0, 99)
)
pods = st.lists(
    st.builds(
        Pod,
        namespace=st.sampled_from(["shop", "kube-system", "batch"]),
        name=names,
        node=st.sampled_from(["n1", "n2", "n3"]),
        controller_kind=st.sampled_from([None, "ReplicaSet", "DaemonSet", "StatefulSet", "Job"]),
        mirror=st.booleans(),
        terminating=st.booleans(),
    ),
    unique_by=lambda p: p.key,
    max_size=30,
)
nodes = st.lists(
    st.builds(
        Node,
        name=st.builds(lambda n: f"node-{n}", st.integers(0, 20)),
        ready=st.booleans(),
        unschedulable=st.booleans(),
    ),
    unique_by=lambda n: n.name,
    max_size=12,
)


@given(pods)
def test_daemonset_and_mirror_pods_are_never_evicted(listed):
    plan = plan_drain(listed)
    assert not any(p.mirror or p.controller_kind == "DaemonSet" for p in plan.blocking)
    skipped = {p.key: reason for p, reason in plan.skipped}
    for pod in listed:
        if pod.mirror:
            assert skipped[pod.key] is Skip.MIRROR
        elif pod.controller_kind == "DaemonSet":
            assert skipped[pod.key] is Skip.DAEMONSET


@given(pods)
def test_every_pod_lands_in_exactly_one_bucket(listed):
    plan = plan_drain(listed)
    buckets = [p.key for p in plan.evict] + [p.key for p in plan.terminating]
    buckets += [p.key for p, _ in plan.skipped]
    assert sorted(buckets) == sorted(p.key for p in listed)
    assert not any(p.terminating for p in plan.evict)


@given(pods)
def test_drain_is_done_only_when_no_evictable_pod_is_left(listed):
    plan = plan_drain(listed)
    assert plan.done == all(skip_reason(p) is not None for p in listed)


@given(pods)
def test_evicting_the_plan_then_waiting_converges_and_counts_everything(listed):
    seen: set[str] = set()
    current = list(listed)
    for _ in range(3):
        plan = plan_drain(current)
        seen |= {p.key for p in plan.blocking}
        report = progress("pool", seen, plan)
        assert 0 <= report.evicted <= report.total == len(seen)
        if plan.done:
            break
        evicted = {p.key for p in plan.evict}
        current = [
            Pod(p.namespace, p.name, p.node, p.controller_kind, p.mirror, terminating=True)
            if p.key in evicted
            else p
            for p in current
            if not (p.terminating and skip_reason(p) is None)
        ]
    assert plan.done
    assert report.evicted == report.total


@given(st.integers(0, 60), st.integers(0, 60), st.floats(0.01, 10), st.floats(0.01, 600))
def test_backoff_grows_with_refusals_and_never_passes_the_cap(a, b, base, cap):
    low, high = sorted((a, b))
    assert backoff_seconds(low, base=base, cap=cap) <= backoff_seconds(high, base=base, cap=cap)
    assert backoff_seconds(high, base=base, cap=cap) <= cap
    assert backoff_seconds(1, base=base, cap=cap) == min(base, cap)


@given(
    pods,
    st.dictionaries(st.sampled_from(["shop/a-1", "shop/b-2"]), st.floats(0, 100)),
    st.floats(0, 100),
)
def test_a_pod_in_backoff_is_not_due(listed, not_before, now):
    ready = due(listed, not_before, now)
    assert all(not_before.get(p.key, 0) <= now for p in ready)
    assert {p.key for p in ready} == {
        p.key for p in listed if p.key not in not_before or not_before[p.key] <= now
    }


@given(nodes, st.integers(1, 12))
def test_readiness_is_done_iff_enough_nodes_are_ready(listed, wanted):
    state = readiness("pool", listed, wanted)
    assert state.done == (sum(n.ready for n in listed) >= wanted)
    assert state.registered == len(listed)


@given(nodes)
def test_only_schedulable_nodes_are_cordoned(listed):
    assert set(to_cordon(listed)) == {n.name for n in listed if not n.unschedulable}


def test_error_text_names_at_most_twenty_pods_and_counts_the_rest():
    many = [Pod("shop", f"web-{i:02}", "n1") for i in range(MAX_NAMED_PODS + 5)]
    text = describe_pods(many, {"shop/web-00": "budget web needs 2"})
    assert text.startswith("shop/web-00 (budget web needs 2), shop/web-01 (not evicted)")
    assert text.endswith("and 5 more")
    assert "web-20" not in text


# --- the shell against the fake API -------------------------------------------------------------


class FakeClock:
    """Time that passes only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.001)


@pytest.fixture
def kube_api() -> Iterator[FakeKubeApi]:
    with FakeKubeApi() as fake:
        yield fake


@pytest.fixture
def api(kube_api: FakeKubeApi) -> Iterator[NodePoolApi]:
    with NodePoolApi(kube_api.kubeconfig()) as client:
        yield client


def seed_pools(fake: FakeKubeApi) -> None:
    """Old pool: two nodes with three web Pods, a DaemonSet Pod and a static Pod. New: one node."""
    fake.add_node("old-1", OLD)
    fake.add_node("old-2", OLD)
    fake.add_node("new-1", NEW)
    web = {"labels": {"app": "web"}, "owner_kind": "ReplicaSet", "owner_name": "web-7d9f"}
    fake.add_pod("shop", "web-7d9f-a", "old-1", **web)
    fake.add_pod("shop", "web-7d9f-b", "old-1", **web)
    fake.add_pod("shop", "web-7d9f-c", "old-2", **web)
    fake.add_pod("shop", "web-7d9f-d", "new-1", **web)
    fake.add_pod(
        "kube-system", "fluent-bit-x1", "old-1", owner_kind="DaemonSet", owner_name="fluent-bit"
    )
    fake.add_pod("kube-system", "kube-proxy-old-2", "old-2", mirror=True)


def drain(api: NodePoolApi, clock: FakeClock, logs: list[str], timeout: float = 120.0):
    return drain_pool(
        api,
        OLD,
        timeout=timeout,
        poll=5.0,
        backoff_base=1.0,
        backoff_cap=30.0,
        clock=clock,
        sleep=clock.sleep,
        log=logs.append,
    )


def test_pdb_refusal_backs_off_and_retries_until_the_budget_frees(kube_api, api):
    seed_pools(kube_api)
    kube_api.add_pdb(
        "shop",
        "web",
        {"app": "web"},
        disruptions_allowed=1,
        desired_healthy=3,
        heal_after_refusals=2,
    )
    logs: list[str] = []
    report = drain(api, FakeClock(), logs)

    assert (report.evicted, report.total) == (3, 3)
    assert kube_api.evictions(429), "the budget never refused: the scenario proves nothing"
    accepted = kube_api.evictions(201)
    assert sorted(accepted) == ["shop/web-7d9f-a", "shop/web-7d9f-b", "shop/web-7d9f-c"]
    assert sorted(kube_api.pods) == [
        "kube-system/fluent-bit-x1",
        "kube-system/kube-proxy-old-2",
        "shop/web-7d9f-d",
    ]
    assert {n.name: n.unschedulable for n in kube_api.nodes.values()} == {
        "old-1": True,
        "old-2": True,
        "new-1": False,
    }
    assert f"pool {OLD}: 3/3 pods evicted" in logs
    assert any(line.startswith(f"pool {OLD}: 1/3 pods evicted") for line in logs)


def test_daemonset_and_mirror_pods_stay_and_do_not_block_the_drain(kube_api, api):
    seed_pools(kube_api)
    logs: list[str] = []
    drain(api, FakeClock(), logs)
    evicted = kube_api.evictions()
    assert "kube-system/fluent-bit-x1" not in evicted
    assert "kube-system/kube-proxy-old-2" not in evicted
    assert {"kube-system/fluent-bit-x1", "kube-system/kube-proxy-old-2"} <= set(kube_api.pods)
    assert f"pool {OLD}: 2 node(s) cordoned; pods left in place: 1 DaemonSet, 1 mirror" in logs


def test_drain_timeout_names_the_pods_still_blocking_and_leaves_the_nodes_cordoned(kube_api, api):
    seed_pools(kube_api)
    kube_api.add_pdb("shop", "web", {"app": "web"}, disruptions_allowed=0, desired_healthy=4)
    with pytest.raises(DrainTimedOut) as timed_out:
        drain(api, FakeClock(), [], timeout=60.0)
    message = str(timed_out.value)
    assert f"pool {OLD}: drain timed out after 60s with 3 pod(s) still blocking" in message
    for name in ("web-7d9f-a", "web-7d9f-b", "web-7d9f-c"):
        assert f"shop/{name} (Cannot evict pod as it would violate" in message
    assert "The disruption budget web needs 4 healthy pods and has 4 currently" in message
    assert "web-7d9f-d" not in message and "fluent-bit" not in message
    assert "The pool was NOT deleted" in message
    assert kube_api.nodes["old-1"].unschedulable and kube_api.nodes["old-2"].unschedulable


def test_refused_pods_are_retried_on_a_growing_backoff_not_every_poll(kube_api, api):
    kube_api.add_node("old-1", OLD)
    kube_api.add_pod("shop", "web-1", "old-1", labels={"app": "web"}, owner_kind="ReplicaSet")
    kube_api.add_pdb("shop", "web", {"app": "web"}, disruptions_allowed=0)
    clock = FakeClock()
    with pytest.raises(DrainTimedOut):
        drain_pool(
            api,
            OLD,
            timeout=100.0,
            poll=1.0,
            backoff_base=1.0,
            backoff_cap=30.0,
            clock=clock,
            sleep=clock.sleep,
            log=lambda _: None,
        )
    pod_lists = [r for r in kube_api.requests if r.path == "/api/v1/pods"]
    attempts = kube_api.evictions(429)
    # Backoff 1, 2, 4, 8, 16, 30, 30 ... fits about 8 attempts into 100 polls of 1 s.
    assert 5 <= len(attempts) <= 10 < len(pod_lists)


def test_create_waits_until_enough_nodes_are_ready(kube_api, api):
    kube_api.add_node("new-1", NEW, ready=False, ready_after_lists=3)
    kube_api.add_node("new-2", NEW, ready=False, ready_after_lists=5)
    kube_api.add_node("old-1", OLD)
    clock, logs = FakeClock(), []
    state = wait_until_ready(
        api, NEW, 2, timeout=900, poll=5, clock=clock, sleep=clock.sleep, log=logs.append
    )
    assert (state.ready, state.registered) == (2, 2)
    assert logs[0] == f"pool {NEW}: 0/2 nodes Ready (2 registered)"
    assert logs[-1] == f"pool {NEW}: 2/2 nodes Ready (2 registered)"


def test_create_times_out_saying_how_many_nodes_were_ready(kube_api, api):
    kube_api.add_node("new-1", NEW)
    kube_api.add_node("new-2", NEW, ready=False)
    kube_api.add_node("new-3", NEW, ready=False)
    clock = FakeClock()
    with pytest.raises(NodesNotReady) as not_ready:
        wait_until_ready(
            api, NEW, 3, timeout=60, poll=5, clock=clock, sleep=clock.sleep, log=lambda _: None
        )
    assert str(not_ready.value).startswith(
        f"pool {NEW}: only 1/3 nodes Ready after 60s (3 registered). The old pool keeps serving."
    )


def test_cordon_sends_a_patch_type_the_api_server_accepts(kube_api, api):
    kube_api.add_node("old-1", OLD)
    api.cordon("old-1")
    patch = [r for r in kube_api.requests if r.method == "PATCH"]
    assert [(r.path, r.content_type, r.status) for r in patch] == [
        ("/api/v1/nodes/old-1", "application/strategic-merge-patch+json", 200)
    ]
    # What the API server (and so the fake) answers to the client's default JSON-patch type:
    request = urllib.request.Request(
        f"{kube_api.url}/api/v1/nodes/old-1",
        data=json.dumps({"spec": {"unschedulable": True}}).encode(),
        method="PATCH",
        headers={
            "Content-Type": "application/json-patch+json",
            "Authorization": f"Bearer {kube_api.token}",
        },
    )
    with pytest.raises(urllib.error.HTTPError) as rejected:
        urllib.request.urlopen(request)
    assert rejected.value.code == 400


def test_eviction_outcomes_follow_the_api_status_codes(kube_api, api):
    kube_api.add_node("old-1", OLD)
    kube_api.add_pod("shop", "web-1", "old-1", labels={"app": "web", "tier": "front"})
    assert api.evict(Pod("shop", "ghost", "old-1")).outcome is Eviction.GONE
    kube_api.add_pdb("shop", "web", {"app": "web"}, disruptions_allowed=1)
    kube_api.add_pdb("shop", "front", {"tier": "front"}, disruptions_allowed=1)
    with pytest.raises(KubeUnavailable, match=r"HTTP 500: .*more than one PodDisruptionBudget"):
        api.evict(Pod("shop", "web-1", "old-1"))


def test_wrong_credentials_fail_clearly_without_echoing_the_kubeconfig(kube_api):
    stale = NodePoolApi(kube_api.kubeconfig(token="stale-token-123"))
    with stale, pytest.raises(KubeUnavailable) as failed:
        stale.list_nodes(OLD)
    assert f"listing the nodes of pool {OLD} failed with HTTP 401: Unauthorized" in str(
        failed.value
    )
    assert "stale-token-123" not in str(failed.value)


def test_a_broken_kubeconfig_is_reported_without_its_content():
    with pytest.raises(KubeUnavailable) as failed:
        NodePoolApi("clusters: [secret-material-xyz")
    assert "secret-material-xyz" not in str(failed.value)


# --- the provider ---------------------------------------------------------------------------------


def props(kubeconfig: str, **overrides: object) -> dict[str, object]:
    return {
        "pool_name": OLD,
        "kubeconfig": kubeconfig,
        "min_ready_nodes": 2,
        "ready_timeout_seconds": 30,
        "drain_timeout_seconds": 30,
        "poll_seconds": 0.05,
        "backoff_base_seconds": 0.05,
        "backoff_cap_seconds": 0.2,
        "node_label": "cloud.google.com/gke-nodepool",
        "provider_version": PROVIDER_VERSION,
        **overrides,
    }


def test_a_new_pool_replaces_the_drain_and_nothing_deletes_first():
    provider = NodePoolDrainProvider()
    old = props("kc")
    moved = provider.diff("drain", old, props("kc", pool_name=NEW))
    assert (moved.changes, moved.replaces, moved.delete_before_replace) == (
        True,
        ["pool_name"],
        False,
    )
    slower = provider.diff("drain", old, props("kc", drain_timeout_seconds=3600))
    assert (slower.changes, slower.replaces) == (True, [])
    assert provider.diff("drain", old, props("kc")).changes is False


def test_check_names_each_bad_input():
    result = NodePoolDrainProvider().check(
        {}, props("kc", pool_name="", min_ready_nodes=0, drain_timeout_seconds=-1)
    )
    assert sorted(f.property for f in result.failures) == [
        "drain_timeout_seconds",
        "min_ready_nodes",
        "pool_name",
    ]


def test_lifecycle_through_the_real_provider_host(kube_api, provider_host: ProviderHost):
    """What `pulumi up` does: create fails while a node is NotReady, succeeds once it is Ready
    (the next `up`), and delete drains the pool, all after a dill round trip into the host."""
    seed_pools(kube_api)
    kube_api.nodes["old-2"].ready = False
    kube_api.add_pdb(
        "shop",
        "web",
        {"app": "web"},
        disruptions_allowed=1,
        desired_healthy=3,
        heal_after_refusals=1,
    )
    provider = NodePoolDrainProvider()
    checked = provider_host.check(provider, {}, props(kube_api.kubeconfig()))
    assert checked.failures == []

    with pytest.raises(ProviderHostError) as failed:
        provider_host.create(provider, {**checked.inputs, "ready_timeout_seconds": 0.3})
    assert failed.value.message.startswith(
        f"providers.node_pool_drain.provider.NodesNotReady: pool {OLD}: only 1/2 nodes Ready"
    )

    kube_api.nodes["old-2"].ready = True
    id_, outputs = provider_host.create(provider, checked.inputs)
    assert id_ == f"drain-{OLD}"
    assert outputs["ready_nodes"] == 2
    assert kube_api.evictions() == [], "create must not touch the pool's Pods"

    provider_host.delete(provider, id_, outputs)
    assert sorted(kube_api.evictions(201)) == [
        "shop/web-7d9f-a",
        "shop/web-7d9f-b",
        "shop/web-7d9f-c",
    ]
    assert kube_api.evictions(429)
    assert kube_api.nodes["old-1"].unschedulable and not kube_api.nodes["new-1"].unschedulable
    stderr = provider_host.stderr_text()
    assert f"info: pool {OLD}: 2/2 nodes Ready (2 registered)" in stderr
    assert f"info: pool {OLD}: 3/3 pods evicted" in stderr
    assert kube_api.token not in stderr + provider_host.stdout_text()
