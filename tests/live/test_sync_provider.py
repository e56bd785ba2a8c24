"""The Octavia → NLB sync against the real Octavia API and a moto server.

Each scenario drives the provider's methods in-process (as the provider host would) and asserts
on the target group's real targets as moto reports them. Calls are observed with botocore event
hooks on the provider's own clients; moto drops AvailabilityZone, so request parameters are
captured on the way out.
"""

import re
import uuid
from collections import Counter
from ipaddress import IPv4Network

import pytest
from botocore.exceptions import ClientError
from keystoneauth1 import exceptions as ksa_exceptions
from openstack import exceptions as sdk_exceptions

from providers.octavia_nlb_sync import OctaviaNlbSyncProvider, SyncRefused
from providers.octavia_nlb_sync import elbv2 as elbv2_shell
from providers.octavia_nlb_sync import octavia as octavia_shell
from providers.octavia_nlb_sync.octavia import OctaviaUnavailable
from providers.octavia_nlb_sync.planner import Target
from providers.octavia_nlb_sync.provider import WrongOctaviaId
from providers.octavia_nlb_sync.spec import ForeignPool
from tests.fixtures.sync_world import VPC_CIDR, live, props, writes


@pytest.fixture
def provider():
    return OctaviaNlbSyncProvider()


def checked(provider, news):
    result = provider.check({}, news)
    assert result.failures == []
    return result.inputs


# --- scenarios ------------------------------------------------------------------------------


def test_first_sync_registers_serving_members_only(octavia, target_group, elbv2, provider, calls):
    lb, pool = octavia({443: [("172.17.0.1", 8443), ("172.17.0.2", 8443), ("172.17.0.3", 8443, 0)]})
    tg = target_group()
    created = provider.create(checked(provider, props(lb.lb_id, (pool, tg))))
    assert live(elbv2, tg) == ["172.17.0.1:8443", "172.17.0.2:8443"]
    assert created.outs["targets"] == {tg: ["172.17.0.1:8443", "172.17.0.2:8443"]}
    assert created.outs["last_sync"] == {"registered": 2, "deregistered": 0}
    assert writes(calls) == {"RegisterTargets": 1}


def test_member_added_then_removed(octavia, target_group, elbv2, provider, capsys):
    lb, pool = octavia({443: [("172.17.0.1", 8443), ("172.17.0.2", 8443)]})
    tg = target_group()
    inputs = checked(provider, props(lb.lb_id, (pool, tg)))
    state = provider.create(inputs).outs

    lb.add(pool, "172.17.0.3", 8443)
    diff = provider.diff("id", state, inputs)
    assert diff.changes is True
    assert "tg/shop-443: +1 -0 targets to sync" in capsys.readouterr().err
    state = provider.update("id", state, inputs).outs
    assert live(elbv2, tg) == ["172.17.0.1:8443", "172.17.0.2:8443", "172.17.0.3:8443"]

    lb.remove(pool, "172.17.0.2")
    state = provider.update("id", state, inputs).outs
    assert live(elbv2, tg) == ["172.17.0.1:8443", "172.17.0.3:8443"]
    assert state["last_sync"] == {"registered": 0, "deregistered": 1}


def test_weight_zero_and_admin_down_drain_the_target(octavia, target_group, elbv2, provider):
    lb, pool = octavia({443: [(f"172.17.0.{i}", 8443) for i in range(1, 5)]})
    tg = target_group()
    inputs = checked(provider, props(lb.lb_id, (pool, tg)))
    state = provider.create(inputs).outs

    lb.update(pool, "172.17.0.1", weight=0)
    state = provider.update("id", state, inputs).outs
    assert "172.17.0.1:8443" not in live(elbv2, tg)

    lb.update(pool, "172.17.0.2", is_admin_state_up=False)
    state = provider.update("id", state, inputs).outs
    assert live(elbv2, tg) == ["172.17.0.3:8443", "172.17.0.4:8443"]

    lb.update(pool, "172.17.0.1", weight=3)
    provider.update("id", state, inputs)
    assert "172.17.0.1:8443" in live(elbv2, tg)


def test_targets_outside_the_vpc_are_registered_in_zone_all(octavia, target_group, provider, calls):
    lb, pool = octavia({443: [("172.17.0.1", 8443), ("10.10.5.5", 8443)]})
    tg = target_group()
    provider.create(checked(provider, props(lb.lb_id, (pool, tg))))
    (registered,) = [p["Targets"] for name, p in calls if name == "RegisterTargets"]
    by_ip = {t["Id"]: t for t in registered}
    assert by_ip["172.17.0.1"]["AvailabilityZone"] == "all"
    assert "AvailabilityZone" not in by_ip["10.10.5.5"]


def test_two_pools_feed_two_target_groups(octavia, target_group, elbv2, provider):
    lb, https, http = octavia(
        {443: [("172.17.0.1", 8443), ("172.17.0.2", 8443)], 80: [("172.17.1.1", 8080)]}
    )
    tg_https, tg_http = target_group("shop-443"), target_group("shop-80")
    outs = provider.create(
        checked(provider, props(lb.lb_id, (https, tg_https), (http, tg_http)))
    ).outs
    assert live(elbv2, tg_https) == ["172.17.0.1:8443", "172.17.0.2:8443"]
    assert live(elbv2, tg_http) == ["172.17.1.1:8080"]
    assert set(outs["targets"]) == {tg_https, tg_http}


def test_a_foreign_target_is_left_alone(octavia, target_group, elbv2, provider):
    lb, pool = octavia({443: [("172.17.0.1", 8443), ("172.17.0.2", 8443)]})
    tg = target_group()
    elbv2.register_targets(TargetGroupArn=tg, Targets=[{"Id": "10.10.9.9", "Port": 9000}])
    inputs = checked(provider, props(lb.lb_id, (pool, tg)))
    state = provider.create(inputs).outs
    lb.remove(pool, "172.17.0.2")
    state = provider.update("id", state, inputs).outs
    assert live(elbv2, tg) == ["10.10.9.9:9000", "172.17.0.1:8443"]
    provider.delete("id", state)
    assert live(elbv2, tg) == ["10.10.9.9:9000"]


def test_owning_the_group_removes_foreign_targets(octavia, target_group, elbv2, provider):
    lb, pool = octavia({443: [(f"172.17.0.{i}", 8443) for i in range(1, 4)]})
    tg = target_group()
    elbv2.register_targets(TargetGroupArn=tg, Targets=[{"Id": "10.10.9.9", "Port": 9000}])
    provider.create(checked(provider, props(lb.lb_id, (pool, tg), owns_target_groups=True)))
    assert live(elbv2, tg) == [f"172.17.0.{i}:8443" for i in range(1, 4)]


def test_octavia_down_diff_warns_update_raises_and_the_nlb_is_left(
    octavia, octavia_server, target_group, elbv2, provider, calls, capsys
):
    """Octavia down must not block the rest of an `up` (a DNS drain made because it is down):
    `diff` warns and reports no change unless the sync's own inputs changed; `update` fails."""
    lb, pool = octavia({443: [("172.17.0.1", 8443), ("172.17.0.2", 8443)]})
    tg = target_group()
    inputs = checked(provider, props(lb.lb_id, (pool, tg)))
    state = provider.create(inputs).outs
    before = len(calls)
    octavia_server.stop()
    try:
        assert provider.diff("id", state, inputs).changes is False
        assert f"octavia lb {lb.lb_id}: member drift unknown" in capsys.readouterr().err
        changed = {**inputs, "max_deregister_fraction": 0.4}
        assert provider.diff("id", state, changed).changes is True
        with pytest.raises(OctaviaUnavailable, match=r"(?i)the NLB was not touched"):
            provider.update("id", state, changed)
    finally:
        octavia_server.start()
    assert not writes(calls[before:])
    assert live(elbv2, tg) == ["172.17.0.1:8443", "172.17.0.2:8443"]


def test_an_empty_pool_hits_the_guard_and_changes_nothing(
    octavia, target_group, elbv2, provider, calls
):
    lb, pool = octavia({443: [("172.17.0.1", 8443), ("172.17.0.2", 8443)]})
    tg = target_group()
    inputs = checked(provider, props(lb.lb_id, (pool, tg)))
    state = provider.create(inputs).outs
    lb.remove(pool, "172.17.0.1")
    lb.remove(pool, "172.17.0.2")
    before = len(calls)
    with pytest.raises(SyncRefused, match="tg/shop-443: Octavia lists no serving member"):
        provider.diff("id", state, inputs)
    with pytest.raises(SyncRefused):
        provider.update("id", state, inputs)
    assert not writes(calls[before:])
    assert live(elbv2, tg) == ["172.17.0.1:8443", "172.17.0.2:8443"]


def test_throttling_is_retried(octavia, target_group, elbv2, provider, monkeypatch, aws_env):
    lb, pool = octavia({443: [("172.17.0.1", 8443)]})
    tg = target_group()
    attempts = Counter()
    real = elbv2_shell.client
    hooked: set[int] = set()

    def throttled(region=None):
        client = real(region)  # one per region for the process: hook it once
        if id(client) in hooked:
            return client
        hooked.add(id(client))

        def throttle(request, event_name, **_):
            operation_name = event_name.rsplit(".", 1)[-1]
            attempts[operation_name] += 1
            if operation_name == "RegisterTargets" and attempts[operation_name] <= 2:
                from botocore.awsrequest import AWSResponse

                body = (
                    b"<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>"
                    b"<Message>Rate exceeded</Message></Error></ErrorResponse>"
                )

                class Raw:
                    def stream(self, **_):
                        yield body

                return AWSResponse(request.url, 400, {}, Raw())
            return None

        client.meta.events.register("before-send.elastic-load-balancing-v2.*", throttle)
        return client

    monkeypatch.setattr(elbv2_shell, "client", throttled)
    provider.create(checked(provider, props(lb.lb_id, (pool, tg))))
    assert attempts["RegisterTargets"] == 3
    assert live(elbv2, tg) == ["172.17.0.1:8443"]


def test_a_noop_sync_makes_zero_write_calls(octavia, target_group, provider, calls, capsys):
    lb, pool = octavia({443: [("172.17.0.1", 8443), ("172.17.0.2", 8443)]})
    tg = target_group()
    inputs = checked(provider, props(lb.lb_id, (pool, tg)))
    state = provider.create(inputs).outs
    before = len(calls)
    assert provider.diff("id", state, inputs).changes is False
    state = provider.update("id", state, inputs).outs
    assert not writes(calls[before:])
    assert [name for name, _ in calls[before:]] == ["DescribeTargetHealth"] * 2
    assert state["last_sync"] == {"registered": 0, "deregistered": 0}
    assert "tg/shop-443: +0 -0" in capsys.readouterr().err


def test_delete_removes_owned_targets_only_and_tolerates_a_gone_group(
    octavia, target_group, elbv2, provider
):
    lb, pool = octavia({443: [("172.17.0.1", 8443)]})
    tg, gone = target_group("shop-443"), target_group("old-443")
    elbv2.register_targets(TargetGroupArn=tg, Targets=[{"Id": "10.10.9.9", "Port": 9000}])
    state = provider.create(checked(provider, props(lb.lb_id, (pool, tg)))).outs
    state["targets"][gone] = ["172.17.7.7:8443"]
    elbv2.delete_target_group(TargetGroupArn=gone)
    provider.delete("id", state)
    assert live(elbv2, tg) == ["10.10.9.9:9000"]


def test_refresh_reports_live_owned_targets(octavia, target_group, elbv2, provider):
    lb, pool = octavia({443: [("172.17.0.1", 8443), ("172.17.0.2", 8443)]})
    tg = target_group()
    state = provider.create(checked(provider, props(lb.lb_id, (pool, tg)))).outs
    elbv2.deregister_targets(TargetGroupArn=tg, Targets=[{"Id": "172.17.0.2", "Port": 8443}])
    read = provider.read("id", state)
    assert read.outs["targets"] == {tg: ["172.17.0.1:8443"]}


def test_refresh_reports_a_due_sync_as_drift(octavia, octavia_server, target_group, provider):
    lb, pool = octavia({443: [("172.17.0.1", 8443), ("172.17.0.2", 8443)]})
    tg = target_group()
    state = provider.create(checked(provider, props(lb.lb_id, (pool, tg)))).outs
    assert state["pending"] == {}
    assert provider.read("id", state).outs["pending"] == {}
    lb.add(pool, "172.17.0.3", 8443)
    lb.remove(pool, "172.17.0.1")
    refreshed = provider.read("id", state).outs
    assert refreshed["pending"] == {tg: "+1 -1"}
    octavia_server.stop()
    try:
        assert provider.read("id", refreshed).outs["pending"] == {tg: "+1 -1"}
    finally:
        octavia_server.start()


def test_a_removed_binding_releases_its_targets(octavia, target_group, elbv2, provider):
    lb, https, http = octavia({443: [("172.17.0.1", 8443)], 80: [("172.17.1.1", 8080)]})
    tg_https, tg_http = target_group("shop-443"), target_group("shop-80")
    both = checked(provider, props(lb.lb_id, (https, tg_https), (http, tg_http)))
    state = provider.create(both).outs
    only_https = checked(provider, props(lb.lb_id, (https, tg_https)))
    assert provider.diff("id", state, only_https).changes is True
    state = provider.update("id", state, only_https).outs
    assert live(elbv2, tg_http) == []
    assert set(state["targets"]) == {tg_https}


KEY = "hybrid-infra:loadBalancers[2].adopt.loadbalancerId"


def test_a_pool_of_another_lb_fails_the_check_and_the_create_naming_the_key(
    octavia, target_group, provider, calls
):
    _, foreign_pool = octavia({443: [("172.17.0.1", 8443)]})
    lb, own_pool = octavia({443: [("172.17.0.2", 8443)]})
    tg = target_group()
    news = props(lb.lb_id, (own_pool, tg), (foreign_pool, tg), config_key=KEY)
    (failure,) = provider.check({}, news).failures
    assert failure.property == "bindings[1].pool_id"
    assert failure.reason.startswith(
        f"{KEY}: pool {foreign_pool} is not a pool of load balancer {lb.lb_id} "
        f"(its pools: {own_pool})"
    )
    with pytest.raises(WrongOctaviaId, match=f"^{re.escape(KEY)}: pool {foreign_pool} is not") as e:
        provider.create(provider.check({}, news).inputs)
    assert isinstance(e.value.__cause__, ForeignPool)
    assert e.value.property == "bindings[1].pool_id"
    assert not writes(calls)


def test_a_wrong_id_fails_the_preview_and_an_outage_only_warns(
    octavia, octavia_server, target_group, elbv2, provider, calls, capsys
):
    """Octavia answering 404 is a mistake in the stack: the preview (`check` for a new sync,
    `diff` for an existing one) fails naming the key. Octavia not answering is an outage: the
    same calls warn and let the rest of the stack go on."""
    lb, pool = octavia({443: [("172.17.0.1", 8443)]})
    tg = target_group()
    state = provider.create(checked(provider, props(lb.lb_id, (pool, tg), config_key=KEY))).outs
    created = len(calls)
    unknown = str(uuid.uuid4())
    wrong = props(unknown, (pool, tg), config_key=KEY)
    expected = f"{KEY}: no Octavia load balancer {unknown} (404). Octavia answered"

    (failure,) = provider.check({}, wrong).failures
    assert (failure.property, failure.reason[: len(expected)]) == ("loadbalancer_id", expected)
    with pytest.raises(WrongOctaviaId) as raised:
        provider.diff("id", state, wrong)
    assert str(raised.value).startswith(expected)
    with pytest.raises(WrongOctaviaId, match=re.escape(expected)):
        provider.update("id", state, wrong)
    capsys.readouterr()

    octavia_server.stop()
    try:
        assert provider.check({}, wrong).failures == []
        assert provider.diff("id", state, wrong).changes is True  # its own input changed
        shown = capsys.readouterr().err
        assert "ids not verified, Octavia did not answer" in shown
        assert "member drift unknown, Octavia did not answer" in shown
    finally:
        octavia_server.start()
    assert not writes(calls[created:])
    assert live(elbv2, tg) == ["172.17.0.1:8443"]


def test_a_pool_deleted_in_octavia_is_a_wrong_id_not_an_outage(
    octavia, octavia_conn, target_group, provider
):
    lb, https, http = octavia({443: [("172.17.0.1", 8443)], 80: [("172.17.1.1", 8080)]})
    tg_https, tg_http = target_group("shop-443"), target_group("shop-80")
    inputs = checked(provider, props(lb.lb_id, (https, tg_https), (http, tg_http)))
    state = provider.create(inputs).outs
    octavia_conn.load_balancer.delete_pool(http)
    lb.wait()
    with pytest.raises(WrongOctaviaId, match=f"octavia lb {lb.lb_id}: pool {http} is not a pool"):
        provider.diff("id", state, inputs)


def test_the_shell_lists_each_target_with_its_state(octavia, target_group, provider):
    """What a target's state means (draining: on its way out) is the planner's call, so the
    shell hands every target over, with the state the NLB reports."""
    lb, pool = octavia({443: [("172.17.0.1", 8443)]})
    tg = target_group()
    provider.create(checked(provider, props(lb.lb_id, (pool, tg))))
    (target,) = elbv2_shell.list_targets(elbv2_shell.client(), tg)
    assert isinstance(target, Target) and target.key == "172.17.0.1:8443"
    assert target.state in {"initial", "healthy", "unhealthy", "unused", "unavailable"}


def test_big_groups_are_written_in_chunks_of_200(target_group, elbv2, calls):
    tg = target_group()
    targets = [f"172.17.{i // 250}.{i % 250 + 1}:8443" for i in range(450)]
    client = elbv2_shell.client()
    assert elbv2_shell.register(client, tg, targets, [IPv4Network(VPC_CIDR)]) == 450
    assert [len(p["Targets"]) for name, p in calls if name == "RegisterTargets"] == [200, 200, 50]
    assert len(live(elbv2, tg)) == 450
    elbv2_shell.deregister(client, tg, targets[:250], [IPv4Network(VPC_CIDR)])
    assert [len(p["Targets"]) for name, p in calls if name == "DeregisterTargets"] == [200, 50]
    assert len(live(elbv2, tg)) == 200


# --- check ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "prop"),
    [
        ({"loadbalancer_id": "lb-1"}, "loadbalancer_id"),
        ({"bindings": []}, "bindings"),
        (
            {"bindings": [{"pool_id": "x", "target_group_arn": "arn:aws:nope"}]},
            "bindings[0].pool_id",
        ),
        ({"vpc_cidrs": ["10.0.0.0/33"]}, "vpc_cidrs[0]"),
        ({"max_deregister_fraction": 1.5}, "max_deregister_fraction"),
    ],
)
def test_check_names_the_bad_property(provider, change, prop):
    good = props(
        str(uuid.uuid4()),
        (
            str(uuid.uuid4()),
            "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/shop/0123456789abcdef",
        ),
    )
    failures = provider.check({}, {**good, **change}).failures
    assert prop in [f.property for f in failures]


def test_check_rejects_a_duplicate_binding_and_tolerates_unknowns(provider):
    from pulumi.output import Unknown

    arn = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/shop/0123456789abcdef"
    pool = str(uuid.uuid4())
    duplicate = props(str(uuid.uuid4()), (pool, arn), (pool, arn))
    assert [f.property for f in provider.check({}, duplicate).failures] == ["bindings[1]"]
    unknown = props(Unknown(), (pool, Unknown()))
    assert provider.check({}, unknown).failures == []
    assert provider.diff("id", {}, unknown).changes is True


def test_provider_builds_no_client_at_import_or_construction():
    # The provider is dill-serialized into state: it must carry no client or credential.
    assert vars(OctaviaNlbSyncProvider()) == {}


# --- clients for the life of the process ----------------------------------------------------


def test_syncs_share_one_client_and_one_connection(octavia, target_group, provider, calls):
    """Real Octavia and moto: building clients per call cost ~100 ms (boto3) and a version
    discovery (openstacksdk) each; a provider host serving a whole `up` builds each once."""
    lb, pool = octavia({443: [("172.17.0.1", 8443)]})
    tg = target_group()
    inputs = checked(provider, props(lb.lb_id, (pool, tg)))
    state = provider.create(inputs).outs
    clients = {id(elbv2_shell.client(None)) for _ in range(3)}
    connections = {id(octavia_shell.connect(None)) for _ in range(3)}
    for _ in range(3):
        assert provider.diff("id", state, inputs).changes is False
    assert len(clients) == len(connections) == 1
    assert id(elbv2_shell.client(None)) in clients
    assert id(octavia_shell.connect(None)) in connections


def test_expired_aws_credentials_rebuild_the_client_once(
    octavia, target_group, elbv2, provider, calls
):
    """The cached client's credentials expire (its calls now fail with ExpiredToken); the sync
    drops it, builds a new one and succeeds; nothing was written with the refused one."""
    lb, pool = octavia({443: [("172.17.0.1", 8443)]})
    tg = target_group()
    inputs = checked(provider, props(lb.lb_id, (pool, tg)))
    stale = elbv2_shell.client(None)

    def expired(**_):
        raise ClientError({"Error": {"Code": "ExpiredToken", "Message": "expired"}}, "Describe")

    stale.meta.events.register("before-call.elastic-load-balancing-v2.*", expired)
    provider.create(inputs)
    assert elbv2_shell.client(None) is not stale
    assert live(elbv2, tg) == ["172.17.0.1:8443"]


def test_a_refused_openstack_token_rebuilds_the_connection_once(
    octavia, target_group, elbv2, provider, monkeypatch
):
    lb, pool = octavia({443: [("172.17.0.1", 8443)]})
    tg = target_group()
    inputs = checked(provider, props(lb.lb_id, (pool, tg)))
    stale = octavia_shell.connect(None)

    def refused(*_args, **_kwargs):
        raise ksa_exceptions.Unauthorized("token expired")

    monkeypatch.setattr(stale.load_balancer, "get_load_balancer", refused)
    provider.create(inputs)
    assert octavia_shell.connect(None) is not stale
    assert live(elbv2, tg) == ["172.17.0.1:8443"]


def test_a_second_refusal_is_an_error_and_writes_nothing(
    octavia, target_group, elbv2, provider, monkeypatch, calls
):
    lb, pool = octavia({443: [("172.17.0.1", 8443)]})
    tg = target_group()
    inputs = checked(provider, props(lb.lb_id, (pool, tg)))

    def refused(*_args):
        raise OctaviaUnavailable("Octavia API failed: 401") from ksa_exceptions.Unauthorized()

    monkeypatch.setattr(octavia_shell, "read_pool_ids", refused)
    with pytest.raises(OctaviaUnavailable, match="401"):
        provider.create(inputs)
    assert not writes(calls)


def test_another_projects_lb_is_a_wrong_id_not_an_outage(octavia, monkeypatch):
    """Octavia answers 403 for another project's LB to a non-admin caller (its API reference);
    the local Octavia runs without auth, so the answer is put on its real connection."""
    lb, _ = octavia({443: [("172.17.0.1", 8443)]})
    conn = octavia_shell.connect(None)

    def refused(*_args, **_kwargs):
        raise sdk_exceptions.ForbiddenException(
            "Policy does not allow this request", http_status=403
        )

    monkeypatch.setattr(conn.load_balancer, "get_load_balancer", refused)
    with pytest.raises(octavia_shell.OctaviaNotFound) as raised:
        octavia_shell.read_pool_ids(conn, lb.lb_id)
    assert str(raised.value).startswith(f"Octavia refused load balancer {lb.lb_id} (403)")
    monkeypatch.setattr(conn.load_balancer, "load_balancers", refused)
    with pytest.raises(OctaviaUnavailable, match="Octavia API failed while listing"):
        octavia_shell.list_tagged(conn, "hybrid-infra/twin")  # no id to blame: the endpoint
