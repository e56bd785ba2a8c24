"""NodePoolDrain and secrets through the real Pulumi engine, against a real kube-apiserver
(devenv.kube: its eviction subresource, the disruption controller keeping the budget's status,
the ReplicaSet controller and the scheduler; kwok plays the kubelet) and a file backend."""

from __future__ import annotations

import json

import pytest

from tests.engine.conftest import Engine
from tests.fixtures.drain_world import DrainWorld

pytestmark = [pytest.mark.engine, pytest.mark.kube]


def test_a_new_pool_then_the_old_drained_through_a_budget_with_the_kubeconfig_kept_secret(
    drain_world: DrainWorld, engine: Engine
):
    """Replacing the pool name: the engine creates the new drain (which waits for Ready nodes)
    and only then deletes the old one, which cordons the old nodes and evicts their Pods through
    a PodDisruptionBudget: its 429s show in the `up` as progress, not as a failure, and the Pods
    end on the new pool. The kubeconfig, a secret in stack config, never shows in plaintext: not
    in the state file, not in anything the engine prints."""
    world = drain_world
    old, new = world.pool("old"), world.pool("new")
    old_nodes = world.add_pool("old", 2)
    world.deploy("web", 3)
    world.budget("web", "web", min_available=2)
    engine.secret("engine-test:kubeconfig", world.cluster.kubeconfig)
    engine.world({"drains": [{"pool": old, "minReadyNodes": 2}]})
    shown = engine.up()
    assert f"pool {old}: 2/2 nodes Ready" in shown

    new_nodes = world.add_pool("new", 2)  # what creating the new GKE pool does
    engine.world({"drains": [{"pool": new, "minReadyNodes": 2}]})
    shown += engine.preview() + engine.up()
    assert f"pool {new}: 2/2 nodes Ready" in shown
    assert "held back by a PodDisruptionBudget, retrying" in shown, shown
    assert f"pool {old}: 3/3 pods evicted" in shown, shown
    assert all(world.cordoned(n) for n in old_nodes)
    assert not any(world.cordoned(n) for n in new_nodes)
    world.wait_for(lambda: world.ready_replicas("web") == 3, "web Ready again")
    assert set(world.pods("web").values()) <= set(new_nodes)

    state = engine.export()
    (drain,) = [
        r for r in json.loads(state)["deployment"]["resources"] if r["urn"].endswith(f"-{new}")
    ]
    assert drain["inputs"]["kubeconfig"]["4dabf18193072939515e22adb298388d"] == (
        "1b47061264138c4ac30d75fd1eb44270"  # the engine's marker of an encrypted secret
    )
    for text in (state, shown, engine.run("config").stdout):
        assert world.cluster.token not in text
