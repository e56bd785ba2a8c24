"""The Octavia → NLB sync run by the real Pulumi engine (CLI built from source, file backend)
against the real Octavia API and moto. What the mocks and the provider host cannot show: the
engine's own preview lines, its step order, its state file and its handling of failures.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.engine.conftest import Engine, EngineError
from tests.fixtures.sync_world import VPC_CIDR, live

pytestmark = pytest.mark.engine

M1, M2, M3, M4 = "10.1.0.1", "10.1.0.2", "10.1.0.3", "10.1.0.4"
BY_HAND = "10.10.0.99"  # registered by someone else: no sync may ever remove it
PASSWORD = "s3cret-octavia-password"
SECRET_SIG, SECRET_VALUE = "4dabf18193072939515e22adb298388d", "1b47061264138c4ac30d75fd1eb44270"


def world(lb_id: str, *bindings: tuple[str, str], **extra: object) -> dict[str, object]:
    return {
        "loadbalancerId": lb_id,
        "bindings": [{"poolId": p, "targetGroupArn": t} for p, t in bindings],
        "vpcCidrs": [VPC_CIDR],
        **extra,
    }


def test_lifecycle_up_preview_drain_refresh_destroy(octavia, target_group, elbv2, engine: Engine):
    """Members managed in Octavia directly (adopt mode): the engine shows and applies each."""
    lb, pool = octavia({443: [(M1, 443), (M2, 443)]})
    tg = target_group()
    elbv2.register_targets(TargetGroupArn=tg, Targets=[{"Id": BY_HAND, "Port": 443}])
    engine.world(world(lb.lb_id, (pool, tg), declareMembers=False))
    engine.secret("engine-test:osPassword", PASSWORD)

    first = engine.up()
    assert "+1 -0" not in first  # a create has no diff line; its log says what it did
    assert "tg/shop-443: +2 -0 targets synced" in first
    assert live(elbv2, tg) == sorted([f"{M1}:443", f"{M2}:443", f"{BY_HAND}:443"])

    # A member added in Octavia is drift: the preview names it, as the engine prints it.
    lb.add(pool, M3, 443)
    preview = engine.preview()
    assert "tg/shop-443: +1 -0 targets to sync" in preview, preview
    assert "~ pulumi-python:dynamic/hybrid-infra:OctaviaNlbSync: (update)" in preview
    assert live(elbv2, tg) == sorted([f"{M1}:443", f"{M2}:443", f"{BY_HAND}:443"])  # preview
    engine.up()
    assert f"{M3}:443" in live(elbv2, tg)

    # Weight 0 drains. The sync deregisters only because `update` got the old outputs (the
    # targets it registered); without them nothing would be in its scope.
    lb.update(pool, M1, weight=0)
    assert "tg/shop-443: +0 -1 targets synced" in engine.up()
    assert live(elbv2, tg) == sorted([f"{M2}:443", f"{M3}:443", f"{BY_HAND}:443"])

    # Refresh reports the pending sync as drift, and writes nothing to the NLB.
    lb.add(pool, M4, 443)
    refreshed = engine.run("refresh", "--yes").stdout
    pending = engine.resources()["sync"]["outputs"]["pending"]
    assert pending == {tg: "+1 -0"}, refreshed
    assert f"{M4}:443" not in live(elbv2, tg)

    # The OpenStack password, a secret input, is encrypted in state (inputs and outputs) and
    # never printed.
    state = engine.export()
    sync = engine.resources()["sync"]
    assert PASSWORD not in state + first + preview + refreshed
    for side in ("inputs", "outputs"):
        assert sync[side]["os_password"][SECRET_SIG] == SECRET_VALUE

    # Destroy, in a new process from the provider pickled in state, releases only owned targets.
    assert "__provider" in engine.resources()["sync"]["inputs"]
    engine.run("destroy", "--yes")
    assert live(elbv2, tg) == [f"{BY_HAND}:443"]


def steps(event_log: str) -> list[tuple[str, str, str]]:
    """(event, op, resource name) of every step the engine started or finished, in order."""
    found = []
    with open(event_log) as lines:
        for line in lines:
            event = json.loads(line)
            for kind in ("resourcePreEvent", "resOutputsEvent"):
                if kind in event:
                    meta = event[kind]["metadata"]
                    found.append((kind, meta["op"], meta["urn"].rsplit("::", 1)[-1]))
    return found


def test_one_up_adds_drains_and_removes_declared_members(
    octavia, target_group, elbv2, octavia_conn, project_id, engine: Engine, tmp_path
):
    """Members declared in the stack (stand-ins for openstack.loadbalancer.Member): after ONE
    `up` the target group equals the declared serving members, and a removed member leaves the
    NLB before the engine deletes it from Octavia. Without the declared members in the sync's
    bindings, the preview shows +0 -0 and the removed member stays a target."""
    lb, pool = octavia({443: []})
    tg = target_group()

    def member(address: str, weight: int = 1) -> dict[str, object]:
        return {"poolId": pool, "address": address, "port": 443, "weight": weight}

    base = world(lb.lb_id, (pool, tg), projectId=project_id)
    engine.world({**base, "members": [member(M1), member(M2)]})
    engine.up()
    assert live(elbv2, tg) == [f"{M1}:443", f"{M2}:443"], "members reach the NLB in the same up"

    # Remove M1, drain M2 (weight 0), add M3: one preview says it, one up does it.
    engine.world({**base, "members": [member(M2, weight=0), member(M3)]})
    assert "tg/shop-443: +1 -2 targets to sync" in engine.preview()
    log = tmp_path / "events.jsonl"
    engine.up("--event-log", str(log))
    assert live(elbv2, tg) == [f"{M3}:443"]
    in_octavia = {m.address: m.weight for m in octavia_conn.load_balancer.members(pool)}
    assert in_octavia == {M2: 0, M3: 1}

    order = steps(str(log))
    synced = order.index(("resOutputsEvent", "update", "sync"))
    deleted = order.index(("resourcePreEvent", "delete", f"member-{M1}:443"))
    created = order.index(("resOutputsEvent", "create", f"member-{M3}:443"))
    assert created < synced < deleted, order


def test_unknown_inputs_at_preview_show_an_update_and_read_nothing(
    octavia, target_group, elbv2, engine: Engine
):
    """When an input waits on a resource not created yet, the engine calls `diff` with unknowns:
    the preview must succeed and show the update, without planning a sync on guessed values (no
    "targets to sync" line: nothing was read)."""
    lb, pool = octavia({443: [(M1, 443)]})
    tg = target_group()
    engine.world(world(lb.lb_id, (pool, tg), declareMembers=False))
    engine.up()
    engine.world(world(lb.lb_id, (pool, tg), declareMembers=False, lbIdAfterGate=True))
    preview = engine.preview()
    assert "~ pulumi-python:dynamic/hybrid-infra:OctaviaNlbSync: (update)" in preview
    assert re.search(r"~ loadbalancer_id *: \"[0-9a-f-]+\" => \[unknown\]", preview), preview
    assert "targets to sync" not in preview
    engine.up()
    assert live(elbv2, tg) == [f"{M1}:443"]


def test_octavia_outage_the_rest_goes_on_a_failed_update_converges_later(
    octavia, octavia_server, target_group, elbv2, engine: Engine
):
    """Octavia down: an `up` that does not change the sync still updates the rest of the stack
    (the DNS drain an operator makes because Octavia is down); one that changes the sync fails
    with nothing written and leaves state the next `up` converges from once Octavia is back."""
    lb, pool_a, pool_b = octavia({443: [(M1, 443)], 8443: [(M2, 8443)]})
    tg_a, tg_b = target_group("shop-443"), target_group("shop-8443")
    engine.world(world(lb.lb_id, (pool_a, tg_a), declareMembers=False, note="before"))
    engine.up()

    octavia_server.stop()
    try:
        engine.world(world(lb.lb_id, (pool_a, tg_a), declareMembers=False, note="drain octavia"))
        shown = engine.up()
        assert f"octavia lb {lb.lb_id}: member drift unknown" in shown
        assert engine.resources()["note"]["outputs"]["text"] == "drain octavia"

        engine.world(world(lb.lb_id, (pool_a, tg_a), (pool_b, tg_b), declareMembers=False))
        with pytest.raises(EngineError) as failed:
            engine.up()
        assert "The NLB was not touched" in failed.value.output
        assert live(elbv2, tg_b) == []
        assert len(engine.resources()["sync"]["inputs"]["bindings"]) == 1  # old state kept
    finally:
        octavia_server.start()

    engine.up()
    assert live(elbv2, tg_a) == [f"{M1}:443"]
    assert live(elbv2, tg_b) == [f"{M2}:8443"]
    assert set(engine.outputs()["targets"]) == {tg_a, tg_b}
