"""The node-pool drain: planner properties (hypothesis), the poll helper of its waits, the
Kubernetes shell against a real kube-apiserver (devenv.kube, marker `kube`), and create ->
delete through the real provider host.

What is real on the local cluster: the API server's cordon, its eviction subresource and its
429/404/500 answers, the disruption controller keeping each PodDisruptionBudget's status, the
ReplicaSet controller replacing evicted Pods, the scheduler placing them on the new pool's nodes
(the old ones are cordoned), and the DaemonSet controller. kwok plays the kubelet, so no
container runs. Tests whose point is a timeout or a retry count use a clock that advances only
when the drain sleeps; the others wait on the wall clock, with the provider's shortest waits.
"""

from __future__ import annotations

import concurrent.futures
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from providers.node_pool_drain.kube import Eviction, EvictionResult, KubeUnavailable, NodePoolApi
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
from providers.node_pool_drain.wait import wait_for
from tests.fixtures.drain_world import DrainWorld
from tests.support.provider_harness import ProviderHost, ProviderHostError

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


@given(pods, st.sets(st.sampled_from(["shop/web-1", "shop/api-2", "batch/job-3"])))
def test_only_pods_still_to_evict_count_as_held_back_by_a_budget(listed, refused_keys):
    plan = plan_drain(listed)
    refused = dict.fromkeys(refused_keys, "budget says no")
    report = progress("pool", {p.key for p in plan.blocking}, plan, refused)
    held = {p.key for p in plan.evict} & refused_keys
    assert report.held == len(held)
    assert ("held back by a PodDisruptionBudget" in report.summary()) == bool(held)
    if held:
        assert report.example == f"{min(held)}: budget says no"


# --- the poll helper both waits go through -------------------------------------------------------


class FakeClock:
    """Time that passes only when the code under test sleeps: a timeout in a few requests."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.001)


@dataclass(frozen=True)
class Count:
    n: int

    def summary(self) -> str:
        return f"count {self.n}"


class Counting:
    """Looks that go 0, 0, 1, 1, 2, ... and note what happened between them."""

    def __init__(self) -> None:
        self.looks = 0
        self.between: list[float] = []

    def look(self) -> Count:
        self.looks += 1
        return Count((self.looks - 1) // 2)


def test_the_wait_reports_progress_only_when_it_changed_and_returns_the_done_look():
    clock, seen, lines = FakeClock(), Counting(), []
    done = wait_for(
        seen.look,
        lambda c: c.n == 3,
        interval=1,
        wait=60,
        timed_out=lambda c: AssertionError(c),
        callback=lines.append,
        between=seen.between.append,
        clock=clock,
        sleep=clock.sleep,
    )
    assert done == Count(3) and seen.looks == 7
    assert lines == ["count 0", "count 1", "count 2", "count 3"]
    assert seen.between == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0], "acts after each look not done"


def test_the_wait_raises_what_the_last_look_makes_at_the_deadline_without_overshooting():
    clock, seen = FakeClock(), Counting()
    with pytest.raises(TimeoutError, match=r"^count 1$"):
        wait_for(
            seen.look,
            lambda c: False,
            interval=2,
            wait=5,
            timed_out=lambda c: TimeoutError(c.summary()),
            callback=lambda _: None,
            clock=clock,
            sleep=clock.sleep,
        )
    assert clock.now == 5.0, "the last sleep stops at the deadline"
    assert seen.looks == 4, "looks at 0, 2, 4 and at the deadline, 5"


# --- the shell against a real API server (devenv.kube) --------------------------------------------


class RecordedApi(NodePoolApi):
    """The real client, noting each eviction's outcome and each Pod listing."""

    def __init__(self, kubeconfig: str) -> None:
        super().__init__(kubeconfig)
        self.evictions: list[tuple[str, Eviction]] = []
        self.pod_listings = 0

    def list_pods(self, nodes: Iterable[str]) -> tuple[Pod, ...]:
        self.pod_listings += 1
        return super().list_pods(nodes)

    def evict(self, pod: Pod) -> EvictionResult:
        result = super().evict(pod)
        self.evictions.append((pod.key, result.outcome))
        return result


@pytest.fixture
def api(drain_world: DrainWorld) -> Iterator[RecordedApi]:
    with RecordedApi(drain_world.cluster.kubeconfig) as client:
        yield client


def drain_on_the_wall_clock(api: NodePoolApi, pool: str, logs: list[str]):
    return drain_pool(
        api, pool, timeout=60, poll=0.05, backoff_base=0.05, backoff_cap=0.5, log=logs.append
    )


@pytest.mark.kube
def test_a_budget_holding_evictions_back_is_progress_and_the_pods_move_to_the_new_pool(
    drain_world: DrainWorld, api: RecordedApi
):
    """Three web replicas under a budget of two: the first eviction takes the one disruption the
    budget allows, and the API answers 429 to the others until a replacement on the new pool
    turns Ready. The drain reports that as progress and retries until all three have moved."""
    world = drain_world
    old_nodes = world.add_pool("old", 2)
    world.deploy("web", 3)
    world.budget("web", "web", min_available=2)
    old = world.pool("old")
    logs: list[str] = []

    # The new pool comes once the budget has refused: until then the replacement has nowhere
    # to run, so the refusal cannot be raced away by a replacement turning Ready at once.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        draining = pool.submit(drain_on_the_wall_clock, api, old, logs)
        deadline = time.monotonic() + 30
        while not any(o is Eviction.BLOCKED for _, o in list(api.evictions)):
            assert time.monotonic() < deadline and not draining.done(), api.evictions
            time.sleep(0.05)
        new_nodes = world.add_pool("new", 2)
        report = draining.result(timeout=90)

    assert (report.evicted, report.total) == (3, 3)
    outcomes = [outcome for _, outcome in api.evictions]
    assert outcomes.count(Eviction.ACCEPTED) == 3
    assert Eviction.BLOCKED in outcomes, "the budget never refused: the scenario proves nothing"
    held = [line for line in logs if "held back" in line]
    assert held, logs
    assert re.fullmatch(
        rf"pool {old}: [012]/3 pods evicted; [12] held back by a PodDisruptionBudget, retrying "
        rf"\({world.namespace}/web-[a-z0-9-]+: Cannot evict pod as it would violate the pod's "
        r"disruption budget\. The disruption budget web needs 2 healthy pods "
        r"and has \d currently\)",
        held[0],
    ), held[0]
    assert logs[-1] == f"pool {old}: 3/3 pods evicted"
    assert all(world.cordoned(n) for n in old_nodes)
    assert not any(world.cordoned(n) for n in new_nodes)
    world.wait_for(lambda: world.ready_replicas("web") == 3, "web Ready again")
    assert set(world.pods("web").values()) <= set(new_nodes)


@pytest.mark.kube
def test_daemonset_and_mirror_pods_stay_and_do_not_block_the_drain(
    drain_world: DrainWorld, api: RecordedApi
):
    world = drain_world
    old_nodes = world.add_pool("old", 2)
    world.daemonset("log-agent", on=2)
    world.mirror_pod("kube-proxy", old_nodes[0])
    world.deploy("web", 1)
    before = world.pods()
    new_nodes = world.add_pool("new", 1)
    logs: list[str] = []

    drain_on_the_wall_clock(api, world.pool("old"), logs)

    web = {name for name in before if name.startswith("web-")}
    assert {key for key, _ in api.evictions} == {f"{world.namespace}/{name}" for name in web}
    kept = {name: node for name, node in before.items() if name not in web}
    assert len(kept) == 3
    assert kept.items() <= world.pods().items(), "a DaemonSet or mirror Pod was moved"
    assert (
        f"pool {world.pool('old')}: 2 node(s) cordoned; pods left in place: 2 DaemonSet, 1 mirror"
        in logs
    )
    world.wait_for(lambda: world.ready_replicas("web") == 1, "web Ready again")
    assert set(world.pods("web").values()) <= set(new_nodes)


@pytest.mark.kube
def test_drain_timeout_names_the_pods_still_blocking_and_leaves_the_nodes_cordoned(
    drain_world: DrainWorld, api: RecordedApi
):
    world = drain_world
    (old_node,) = world.add_pool("old", 1)
    world.deploy("web", 2)
    world.budget("web", "web", min_available=2)
    world.add_pool("new", 1)
    clock = FakeClock()
    with pytest.raises(DrainTimedOut) as timed_out:
        drain_pool(
            api,
            world.pool("old"),
            timeout=60,
            poll=5,
            backoff_base=1,
            backoff_cap=30,
            clock=clock,
            sleep=clock.sleep,
            log=lambda _: None,
        )
    message = str(timed_out.value)
    assert message.startswith(
        f"pool {world.pool('old')}: drain timed out after 60s with 2 pod(s) still blocking: "
    )
    for name in world.pods("web"):
        assert (
            f"{world.namespace}/{name} (Cannot evict pod as it would violate the pod's disruption "
            "budget. The disruption budget web needs 2 healthy pods and has 2 currently)"
        ) in message
    assert "The pool was NOT deleted and its nodes stay cordoned" in message
    assert world.cordoned(old_node)
    assert set(world.pods("web").values()) == {old_node}


@pytest.mark.kube
def test_refused_pods_are_retried_on_a_growing_backoff_not_every_poll(
    drain_world: DrainWorld, api: RecordedApi
):
    world = drain_world
    world.add_pool("old", 1)
    world.deploy("web", 1)
    world.budget("web", "web", min_available=1)
    clock = FakeClock()
    with pytest.raises(DrainTimedOut):
        drain_pool(
            api,
            world.pool("old"),
            timeout=100,
            poll=1,
            backoff_base=1,
            backoff_cap=30,
            clock=clock,
            sleep=clock.sleep,
            log=lambda _: None,
        )
    assert {outcome for _, outcome in api.evictions} == {Eviction.BLOCKED}
    # Backoff 1, 2, 4, 8, 16, 30, 30 ... fits about 8 attempts into 100 polls of 1 s.
    assert 5 <= len(api.evictions) <= 10 < api.pod_listings


@pytest.mark.kube
def test_create_waits_until_enough_nodes_are_ready(drain_world: DrainWorld, api: RecordedApi):
    """The new pool's nodes register and turn Ready while the drain's create waits for them."""
    world, logs = drain_world, []

    def log(line: str) -> None:
        logs.append(line)
        if len(logs) == 1:
            world.add_pool("new", 2, wait=False)

    state = wait_until_ready(api, world.pool("new"), 2, timeout=30, poll=0.05, log=log)

    assert (state.ready, state.registered) == (2, 2)
    assert logs[0] == f"pool {world.pool('new')}: 0/2 nodes Ready (0 registered)"
    assert logs[-1] == f"pool {world.pool('new')}: 2/2 nodes Ready (2 registered)"


@pytest.mark.kube
def test_create_times_out_saying_how_many_nodes_were_ready(
    drain_world: DrainWorld, api: RecordedApi
):
    world = drain_world
    world.add_pool("new", 1)
    world.add_pool("new", 2, kubelet=False)
    clock = FakeClock()
    with pytest.raises(NodesNotReady) as not_ready:
        wait_until_ready(
            api,
            world.pool("new"),
            3,
            timeout=60,
            poll=5,
            clock=clock,
            sleep=clock.sleep,
            log=lambda _: None,
        )
    assert str(not_ready.value).startswith(
        f"pool {world.pool('new')}: only 1/3 nodes Ready after 60s (3 registered). "
        "The old pool keeps serving."
    )


@pytest.mark.kube
def test_cordon_is_a_patch_the_api_server_accepts(drain_world: DrainWorld, api: RecordedApi):
    """A cordon the real server applies: the node is unschedulable afterwards, so the scheduler
    puts the evicted Pods' replacements elsewhere."""
    (node,) = drain_world.add_pool("old", 1)
    api.cordon(node)
    assert drain_world.cordoned(node)


@pytest.mark.kube
def test_eviction_outcomes_follow_the_api_status_codes(drain_world: DrainWorld, api: RecordedApi):
    world = drain_world
    world.add_pool("old", 1)
    world.deploy("web", 1)
    (name,) = world.pods("web")
    assert api.evict(Pod(world.namespace, "ghost", "")).outcome is Eviction.GONE
    world.budget("web", "web", min_available=1)
    world.budget("web-too", "web", min_available=0)
    with pytest.raises(KubeUnavailable, match=r"HTTP 500: .*more than one PodDisruptionBudget"):
        api.evict(Pod(world.namespace, name, ""))


@pytest.mark.kube
def test_wrong_credentials_fail_clearly_without_echoing_the_kubeconfig(drain_world: DrainWorld):
    cluster = drain_world.cluster
    stale = NodePoolApi(cluster.kubeconfig.replace(cluster.token, "stale-token-123"))
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


@pytest.mark.kube
def test_lifecycle_through_the_real_provider_host(
    drain_world: DrainWorld, provider_host: ProviderHost
):
    """What `pulumi up` does: create fails while a node is not Ready, succeeds once it is (the
    next `up`), and delete drains the pool through a budget, all after a dill round trip into
    the host."""
    world = drain_world
    old = world.pool("old")
    (ready,) = world.add_pool("old", 1)
    (late,) = world.add_pool("old", 1, kubelet=False)
    provider = NodePoolDrainProvider()
    checked = provider_host.check(provider, {}, props(world.cluster.kubeconfig, pool_name=old))
    assert checked.failures == []

    with pytest.raises(ProviderHostError) as failed:
        provider_host.create(provider, {**checked.inputs, "ready_timeout_seconds": 0.3})
    assert failed.value.message.startswith(
        f"providers.node_pool_drain.provider.NodesNotReady: pool {old}: only 1/2 nodes Ready"
    )

    world.start_kubelet(late)
    id_, outputs = provider_host.create(provider, checked.inputs)
    assert id_ == f"drain-{old}"
    assert outputs["ready_nodes"] == 2

    world.deploy("web", 3)
    world.budget("web", "web", min_available=2)
    new_nodes = world.add_pool("new", 2)
    provider_host.delete(provider, id_, outputs)

    assert world.cordoned(ready) and world.cordoned(late)
    world.wait_for(lambda: world.ready_replicas("web") == 3, "web Ready again")
    assert set(world.pods("web").values()) <= set(new_nodes)
    stderr = provider_host.stderr_text()
    assert f"info: pool {old}: 2/2 nodes Ready (2 registered)" in stderr
    assert "held back by a PodDisruptionBudget, retrying" in stderr
    assert f"info: pool {old}: 3/3 pods evicted" in stderr
    assert world.cluster.token not in stderr + provider_host.stdout_text()
