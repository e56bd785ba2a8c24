"""The node-pool drain's Kubernetes shell against a real kube-apiserver (devenv.kube, marker
`kube`), and create -> delete through the real provider host.

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

import pytest

from providers.node_pool_drain.kube import Eviction, EvictionResult, KubeUnavailable, NodePoolApi
from providers.node_pool_drain.planner import (
    Pod,
)
from providers.node_pool_drain.provider import (
    DrainTimedOut,
    NodePoolDrainProvider,
    NodesNotReady,
    drain_pool,
    wait_until_ready,
)
from tests.fixtures.drain_world import DrainWorld
from tests.support.drain import OLD, FakeClock, props
from tests.support.provider_harness import ProviderHost, ProviderHostError

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
