"""NodePoolDrain and secrets through the real Pulumi engine, against the Kubernetes API FAKE
(tests/fakes/kube_api.py: no kube-apiserver can be installed here) and a file backend."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.engine.conftest import Engine
from tests.fakes.kube_api import FakeKubeApi

pytestmark = pytest.mark.engine

OLD, NEW = "pool-v1-29", "pool-v1-30"
WEB = {"labels": {"app": "web"}, "owner_kind": "ReplicaSet", "owner_name": "web-7d9f"}


@pytest.fixture
def kube_api() -> Iterator[FakeKubeApi]:
    with FakeKubeApi() as fake:
        fake.add_node("old-1", OLD)
        fake.add_node("old-2", OLD)
        fake.add_node("new-1", NEW)
        fake.add_pod("shop", "web-a", "old-1", **WEB)
        fake.add_pod("shop", "web-b", "old-2", **WEB)
        yield fake


def test_a_new_pool_then_the_old_drained_with_the_kubeconfig_kept_secret(
    kube_api: FakeKubeApi, engine: Engine
):
    """Replacing the pool name: the engine creates the new drain (which waits for Ready nodes)
    and only then deletes the old one (cordon, evict). The kubeconfig, a secret in stack config,
    never shows in plaintext: not in the state file, not in anything the engine prints."""
    engine.secret("engine-test:kubeconfig", kube_api.kubeconfig())
    engine.world({"drains": [{"pool": OLD, "minReadyNodes": 2}]})
    shown = engine.up()
    assert f"pool {OLD}: 2/2 nodes Ready" in shown

    engine.world({"drains": [{"pool": NEW, "minReadyNodes": 1}]})
    shown += engine.preview() + engine.up()
    assert f"pool {NEW}: 1/1 nodes Ready" in shown
    assert f"pool {OLD}: 2/2 pods evicted" in shown, shown
    assert sorted(kube_api.evictions(201)) == ["shop/web-a", "shop/web-b"]
    assert kube_api.nodes["old-1"].unschedulable and not kube_api.nodes["new-1"].unschedulable

    state = engine.export()
    (drain,) = [
        r for r in json.loads(state)["deployment"]["resources"] if r["urn"].endswith(f"-{NEW}")
    ]
    assert drain["inputs"]["kubeconfig"]["4dabf18193072939515e22adb298388d"] == (
        "1b47061264138c4ac30d75fd1eb44270"  # the engine's marker of an encrypted secret
    )
    for text in (state, shown, engine.run("config").stdout):
        assert kube_api.token not in text
