"""The sync's whole lifecycle through the SDK's real provider host over gRPC, as `pulumi up`
runs it: the provider is dill-serialized, sent as `__provider`, and runs in the host process
against the real Octavia API and moto."""

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from providers.octavia_nlb_sync import OctaviaNlbSyncProvider
from tests.fixtures.sync_world import VPC_CIDR, live
from tests.support.provider_harness import UNKNOWN, ProviderHostError


@pytest.fixture
def host(octavia_env, aws_env, provider_host_factory):
    """A host started after the OS_*/AWS_* env points at the local servers."""
    return provider_host_factory()


def news_for(lb_id: str, pool: str, tg: str) -> dict:
    return {
        "loadbalancer_id": lb_id,
        "bindings": [{"pool_id": pool, "target_group_arn": tg}],
        "vpc_cidrs": [VPC_CIDR],
        "provider_version": "1",
    }


def test_lifecycle_through_the_provider_host(octavia, target_group, elbv2, host):
    provider = OctaviaNlbSyncProvider()
    lb, pool = octavia({443: [("172.17.0.1", 8443), ("172.17.0.2", 8443)]})
    tg = target_group()
    news = news_for(lb.lb_id, pool, tg)

    bad = host.check(provider, {}, {**news, "loadbalancer_id": "lb-1", "vpc_cidrs": ["x"]})
    assert {prop for prop, _ in bad.failures} == {"loadbalancer_id", "vpc_cidrs[0]"}
    preview = host.check(
        provider, {}, {**news, "bindings": [{"pool_id": pool, "target_group_arn": UNKNOWN}]}
    )
    assert preview.failures == []

    inputs = host.check(provider, {}, news).inputs
    assert inputs["max_deregister_fraction"] == 0.5
    id_, state = host.create(provider, inputs)
    assert live(elbv2, tg) == ["172.17.0.1:8443", "172.17.0.2:8443"]
    assert state["last_sync"] == {"registered": 2.0, "deregistered": 0.0}

    assert host.diff(provider, id_, state, inputs).changes is False
    lb.add(pool, "172.17.0.3", 8443)
    assert host.diff(provider, id_, state, inputs).changes is True
    assert "tg/shop-443: +1 -0 targets to sync" in host.stderr_text()

    state = host.update(provider, id_, state, inputs)
    assert live(elbv2, tg) == ["172.17.0.1:8443", "172.17.0.2:8443", "172.17.0.3:8443"]
    assert state["targets"] == {tg: ["172.17.0.1:8443", "172.17.0.2:8443", "172.17.0.3:8443"]}

    elbv2.deregister_targets(TargetGroupArn=tg, Targets=[{"Id": "172.17.0.3", "Port": 8443}])
    _, refreshed = host.read(provider, id_, state)
    assert refreshed["targets"] == {tg: ["172.17.0.1:8443", "172.17.0.2:8443"]}

    elbv2.register_targets(TargetGroupArn=tg, Targets=[{"Id": "10.10.9.9", "Port": 9000}])
    host.delete(provider, id_, state)
    assert live(elbv2, tg) == ["10.10.9.9:9000"]


def test_a_refused_sync_reaches_the_engine_as_a_clear_error(octavia, target_group, elbv2, host):
    provider = OctaviaNlbSyncProvider()
    lb, pool = octavia({443: [("172.17.0.1", 8443), ("172.17.0.2", 8443)]})
    tg = target_group()
    inputs = host.check(provider, {}, news_for(lb.lb_id, pool, tg)).inputs
    id_, state = host.create(provider, inputs)
    lb.remove(pool, "172.17.0.1", "172.17.0.2")
    with pytest.raises(ProviderHostError, match="Octavia lists no serving member"):
        host.update(provider, id_, state, inputs)
    assert live(elbv2, tg) == ["172.17.0.1:8443", "172.17.0.2:8443"]


def test_many_syncs_at_once_through_one_provider_host(octavia, target_group, elbv2, host):
    """What `pulumi up` does with a stack of many LBs: the engine calls the one provider host
    concurrently. Eight syncs at once share its cached clients; each ends with its own group
    equal to its own pool, and a second round of diffs sees no drift anywhere."""
    provider = OctaviaNlbSyncProvider()
    worlds = []
    for i in range(8):
        members = [(f"172.17.{i}.{j}", 8443) for j in range(1, 4)]
        lb, pool = octavia({443: members})
        tg = target_group(f"shop-{i}")
        inputs = host.check(provider, {}, news_for(lb.lb_id, pool, tg)).inputs
        worlds.append((tg, members, inputs))

    with ThreadPoolExecutor(max_workers=8) as engine:
        created = list(engine.map(lambda w: host.create(provider, w[2]), worlds))
        for (tg, members, _), _ in zip(worlds, created, strict=True):
            assert live(elbv2, tg) == sorted(f"{a}:{p}" for a, p in members)
        diffs = list(
            engine.map(
                lambda pair: host.diff(provider, pair[1][0], pair[1][1], pair[0][2]),
                zip(worlds, created, strict=True),
            )
        )
    assert [d.changes for d in diffs] == [False] * 8


def test_a_wrong_id_fails_in_the_host_and_an_outage_warns(
    octavia, octavia_server, target_group, elbv2, host
):
    """As the engine sees it: Octavia answering 404 is a check failure on the property (a new
    sync) or a failed diff (an existing one), both naming the stack's key; Octavia down is a
    warning on the host's stderr and a diff that lets the rest of the stack go on."""
    provider = OctaviaNlbSyncProvider()
    key = "hybrid-infra:loadBalancers[0].adopt.loadbalancerId"
    lb, pool = octavia({443: [("172.17.0.1", 8443)]})
    tg = target_group()
    inputs = host.check(provider, {}, {**news_for(lb.lb_id, pool, tg), "config_key": key}).inputs
    id_, state = host.create(provider, inputs)
    unknown = str(uuid.uuid4())
    wrong = {**inputs, "loadbalancer_id": unknown}
    expected = f"{key}: no Octavia load balancer {unknown} (404)"

    (failure,) = host.check(provider, {}, wrong).failures
    assert failure[0] == "loadbalancer_id" and failure[1].startswith(expected)
    with pytest.raises(ProviderHostError) as failed:
        host.diff(provider, id_, state, wrong)
    assert failed.value.message.startswith(
        f"providers.octavia_nlb_sync.provider.WrongOctaviaId: {expected}"
    )

    octavia_server.stop()
    try:
        assert host.diff(provider, id_, state, inputs).changes is False
        assert f"octavia lb {lb.lb_id}: member drift unknown" in host.stderr_text()
    finally:
        octavia_server.start()
    assert live(elbv2, tg) == ["172.17.0.1:8443"]
