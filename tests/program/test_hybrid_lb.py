"""HybridLoadBalancer and WeightedFailover over the real program and stack files (mocks: the
program's shape)."""

import json

import pytest
from pulumi.runtime import rpc

from components.dns import effective_weights
from model.nlb_mapping import (
    OctaviaListener,
    without_management_ports,
)
from model.stack import parse
from providers.octavia_nlb_sync import octavia
from tests.fixtures.program import raw_of, synth_with
from tests.support.octavia_catalog import below_hlb, catalog_with_listener
from tests.support.synthesis import (
    HEALTH_CHECK,
    HYBRID_LB,
    LISTENER,
    METRIC_ALARM,
    NLB,
    OCTAVIA_LB,
    OCTAVIA_MEMBER,
    OCTAVIA_POOL,
    OPENSTACK_PROVIDER,
    RECORD,
    SECGROUP_RULE,
    SECURITY_GROUP,
    SYNC,
    TARGET_GROUP,
    WEIGHTED_DNS,
    descendants,
    one,
)
from tools.synth import ProgramFailed, stack_config, synthesize


@pytest.fixture(scope="module")
def prod():
    return synthesize("prod")


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_every_octavia_lb_has_exactly_one_nlb_twin_and_one_sync(stack):
    result = synthesize(stack)
    config = parse(raw_of(stack))
    lbs = result.of_type(HYBRID_LB)
    discovered = list(result.outputs.get("discovered", {}))  # tagged LBs (self-service)
    expected = [lb.name for lb in config.load_balancers] + discovered
    assert sorted(lb.name for lb in lbs) == sorted(expected)
    for lb in lbs:
        below = descendants(result, lb)
        nlbs = below.of_type(NLB)
        assert len(nlbs) == 1
        assert nlbs[0].inputs["loadBalancerType"] == "network"
        assert nlbs[0].inputs["enableCrossZoneLoadBalancing"] is True
        assert len(below.of_type(SYNC)) == 1


def test_each_octavia_pool_has_one_target_group_and_one_binding(prod):
    below = below_hlb(prod, "shop")
    pools = below.of_type(OCTAVIA_POOL)
    groups = below.of_type(TARGET_GROUP)
    (sync,) = below.of_type(SYNC)
    # TCP 443 and UDP 443 share one TCP_UDP group, fed by both pools.
    assert len(pools) == 2
    assert [(g.inputs["protocol"], g.inputs["port"]) for g in groups] == [("TCP_UDP", 443)]
    assert len(sync.inputs["bindings"]) == 2
    assert {b["target_group_arn"] for b in sync.inputs["bindings"]} == {
        f"arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/{groups[0].name}/0123456789abcdef"
    }
    assert {g.urn for g in groups} <= set(sync.dependencies)


def test_in_create_mode_the_sync_follows_the_members_and_knows_them(prod):
    """Mocks, program shape: the engine runs the sync after every Member it binds (so an added
    or re-weighted member reaches the NLB in the same `up`), and the bindings carry the
    declared members (so a removed one is deregistered before the engine deletes it)."""
    created = [r for r in prod.of_type(HYBRID_LB) if descendants(prod, r).of_type(OCTAVIA_MEMBER)]
    assert created, "prod declares no Octavia members in create mode"
    for component in created:
        below = descendants(prod, component)
        (sync,) = below.of_type(SYNC)
        members = below.of_type(OCTAVIA_MEMBER)
        assert {m.urn for m in members} <= set(sync.dependencies)
        declared = sorted(
            (m["address"], m["port"], m["weight"])
            for b in sync.inputs["bindings"]
            for m in b["members"]
        )
        assert declared == sorted(
            (m.inputs["address"], m.inputs["protocolPort"], m.inputs["weight"]) for m in members
        )


def test_target_groups_are_ip_targets_with_health_checks_from_the_monitor(prod):
    (group,) = below_hlb(prod, "api").of_type(TARGET_GROUP)
    assert group.inputs["targetType"] == "ip"
    assert group.inputs["proxyProtocolV2"] is True  # PROXYV2 pool
    assert group.inputs["deregistrationDelay"] == 60
    check = group.inputs["healthCheck"]
    assert (check["protocol"], check["interval"], check["timeout"]) == ("TCP", 5, 3)
    assert (check["healthyThreshold"], check["unhealthyThreshold"]) == (2, 3)


def test_each_dns_name_has_two_weighted_health_checked_records(prod):
    for spec in parse(raw_of()).load_balancers:
        below = descendants(prod, one(prod.of_type(WEIGHTED_DNS), f"{spec.name}-dns"))
        records = {r.inputs["setIdentifier"]: r for r in below.of_type(RECORD)}
        assert set(records) == {"octavia", "nlb"}
        assert all(r.inputs["name"] == spec.dns.fqdn for r in records.values())
        assert records["octavia"].inputs["weightedRoutingPolicies"] == [
            {"weight": spec.dns.weights.octavia}
        ]
        assert records["nlb"].inputs["weightedRoutingPolicies"] == [
            {"weight": spec.dns.weights.nlb}
        ]
        assert records["nlb"].inputs["aliases"][0]["evaluateTargetHealth"] is True
        checks = {c.name: c for c in below.of_type(HEALTH_CHECK)}
        assert set(checks) == {f"{spec.name}-dns-octavia", f"{spec.name}-dns-nlb"}
        assert all(r.inputs["healthCheckId"] for r in records.values())


def test_health_check_parameters_follow_config(prod):
    shop_checks = {c.name: c for c in below_hlb(prod, "shop").of_type(HEALTH_CHECK)}
    octavia = shop_checks["shop-dns-octavia"].inputs
    assert (octavia["type"], octavia["port"], octavia["resourcePath"]) == ("HTTPS", 443, "/healthz")
    assert (octavia["requestInterval"], octavia["failureThreshold"]) == (10, 3)
    assert shop_checks["shop-dns-nlb"].inputs["fqdn"] == "shop-nlb-0123456789.elb.amazonaws.com"


def test_private_vip_uses_the_alarm_and_internal_nlb_its_healthy_hosts(prod):
    below = below_hlb(prod, "game-gw")
    checks = {c.name: c.inputs for c in below.of_type(HEALTH_CHECK)}
    assert checks["game-gw-dns-octavia"]["type"] == "CLOUDWATCH_METRIC"
    assert checks["game-gw-dns-octavia"]["cloudwatchAlarmName"] == "game-gw-octavia-vip-unreachable"
    assert checks["game-gw-dns-nlb"]["type"] == "CLOUDWATCH_METRIC"
    (alarm,) = below.of_type(METRIC_ALARM)
    assert alarm.inputs["metricName"] == "HealthyHostCount"


def test_adopted_lb_mirrors_the_described_listeners(prod):
    below = below_hlb(prod, "game-gw")
    assert not below.of_type(OCTAVIA_LB)
    (group,) = below.of_type(TARGET_GROUP)
    assert (group.inputs["protocol"], group.inputs["port"]) == ("TCP_UDP", 7000)
    (sync,) = below.of_type(SYNC)
    assert sync.inputs["loadbalancer_id"] == "6d4f8e2a-1c3b-4e5d-9f7a-8b0c1d2e3f40"
    assert sync.inputs["owns_target_groups"] is True
    assert sync.inputs["max_deregister_fraction"] == 0.3
    assert sync.inputs["config_key"] == "hybrid-infra:loadBalancers[2].adopt.loadbalancerId"


def test_traffic_carrying_resources_are_protected_in_prod_only(prod):
    """The NLB and the DNS records (deleting either takes the service away from some clients);
    not the health checks and alarms behind the records, which are replaced at will."""
    for type_ in (NLB, OCTAVIA_LB, RECORD):
        assert all(r.protect for r in prod.of_type(type_))
    assert not any(r.protect for r in prod.of_type(HEALTH_CHECK))
    dev = synthesize("dev")
    assert not any(r.protect for r in dev.resources)


def test_member_security_group_never_opens_to_the_world(prod):
    rules = prod.of_type(SECGROUP_RULE)
    assert rules
    assert {r.inputs["remoteIpPrefix"] for r in rules} == {"172.16.0.0/22", "10.10.0.0/16"}


def test_drain_switch_zeroes_one_side():
    raw = raw_of()
    raw["loadBalancers"][0]["dns"]["drain"] = "octavia"
    spec = parse(raw).load_balancers[0].dns
    assert effective_weights(spec).octavia == 0
    assert effective_weights(spec).nlb == 10


def test_internal_nlb_health_is_every_target_group_having_a_healthy_host():
    """Mocks, program shape. NLB publishes HealthyHostCount per target group (dimensions
    LoadBalancer + TargetGroup); an alarm on LoadBalancer alone never has data and, treating
    missing data as breaching, would keep the NLB out of DNS for good."""

    def internal_with_two_listeners(raw: dict) -> None:
        api = raw["loadBalancers"][1]
        api["nlb"]["scheme"] = "internal"
        second = json.loads(json.dumps(api["create"]["listeners"][0]))
        api["create"]["listeners"].append({**second, "name": "admin", "port": 8443})

    below = below_hlb(synth_with(internal_with_two_listeners), "api")
    alarms = below.of_type(METRIC_ALARM)
    assert len(alarms) == len(below.of_type(TARGET_GROUP)) == 2
    for alarm in alarms:
        assert alarm.inputs["metricName"] == "HealthyHostCount"
        assert set(alarm.inputs["dimensions"]) == {"LoadBalancer", "TargetGroup"}
    combined = one(below.of_type(HEALTH_CHECK), "api-dns-nlb")
    assert combined.inputs["type"] == "CALCULATED"
    assert combined.inputs["childHealthThreshold"] == 2
    assert len(combined.inputs["childHealthchecks"]) == 2


def test_udp_target_groups_never_set_client_ip_preservation(prod):
    """AWS keeps client IP preservation on for UDP and TCP_UDP groups and refuses "false"."""
    groups = {g.inputs["protocol"]: g for g in prod.of_type(TARGET_GROUP)}
    assert {"TCP_UDP", "TCP"} <= set(groups)
    assert "preserveClientIp" not in groups["TCP_UDP"].inputs
    assert groups["TCP"].inputs["preserveClientIp"] == "false"


def test_an_adopted_lb_with_udp_needs_the_return_path_stated():
    with pytest.raises(ProgramFailed) as failed:
        synth_with(lambda raw: raw["loadBalancers"][2]["nlb"].pop("udpRepliesOverDx"))
    assert str(failed.value.cause).startswith(
        "hybrid-infra:loadBalancers[2].nlb.udpRepliesOverDx: listeners port-7000: the NLB twin "
        "would carry UDP"
    )


def test_openstack_password_reaches_the_provider_and_every_sync_as_a_secret(prod):
    """Mocks, program shape: one credential for all OpenStack consumers, never in plaintext. A
    stack that holds `openstack:password` hands it to each; the shipped stacks hold none, and
    then no consumer gets a password input (the run's clouds.yaml entry supplies it)."""
    (provider,) = prod.of_type(OPENSTACK_PROVIDER)
    assert "password" not in provider.inputs
    assert all("os_password" not in s.inputs for s in prod.of_type(SYNC))
    config, secret_keys = stack_config("prod")
    config["openstack:password"] = "from-the-stack"
    held = synthesize("prod", config=config, secret_keys=[*secret_keys, "openstack:password"])
    (provider,) = held.of_type(OPENSTACK_PROVIDER)
    assert rpc.is_rpc_secret(provider.inputs["password"])
    syncs = held.of_type(SYNC)
    assert syncs
    assert all(rpc.is_rpc_secret(s.inputs["os_password"]) for s in syncs)


def test_the_stack_password_overrides_the_clouds_yaml_entry(tmp_path, monkeypatch):
    """openstacksdk merges the password into the named entry's auth: the sync and the adopt reads
    authenticate as the Terraform provider does with `cloud` + `password`."""
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(
        "clouds:\n  onprem-x:\n    auth_type: password\n    auth:\n"
        "      auth_url: http://127.0.0.1:1/v3\n      username: platform\n"
        "      project_name: hybrid\n      password: from-clouds-yaml\n"
    )
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds))
    assert octavia.connect("onprem-x", "from-stack").config.auth["password"] == "from-stack"
    assert octavia.connect("onprem-x").config.auth["password"] == "from-clouds-yaml"


# --- management ports ------------------------------------------------------------------------


def listener(name: str, port: int, *member_ports: int) -> OctaviaListener:
    return OctaviaListener(name, "TCP", port, name, "TCP", None, member_ports)


def test_a_twin_never_carries_a_management_port_in_front_of_its_members_or_on_them():
    kept, refused = without_management_ports(
        [listener("web", 443, 8443), listener("ssh", 22, 22), listener("kube", 443, 6443, 6443)]
    )
    assert [li.name for li in kept] == ["web"]
    assert refused == [
        "listener ssh on 22 (SSH): a twin never carries a management port",
        "listener kube in front of members on 6443 (Kubernetes API): a twin never carries a "
        "management port",
    ]


def test_an_adopted_lb_keeps_its_management_listener_off_the_twin_and_off_the_internet(tmp_path):
    """game-gw as Octavia has it, plus a listener on 22 and, for this test, client IPs kept:
    the twin mirrors 7000 only, and the members' group opens 22 to the private networks alone.
    Mocks: the program's shape."""

    def preserving(raw: dict) -> None:
        raw["loadBalancers"][2]["nlb"]["preserveClientIp"] = True

    catalog = catalog_with_listener(tmp_path, "game-gw", 22, member_port=22)
    result = synth_with(preserving, octavia_catalog=catalog)
    below = below_hlb(result, "game-gw")
    assert [li.inputs["port"] for li in below.of_type(LISTENER)] == [7000]
    opened = {
        (r.inputs["portRangeMin"], r.inputs["remoteIpPrefix"]) for r in below.of_type(SECGROUP_RULE)
    }
    assert (7000, "0.0.0.0/0") in opened and (22, "10.10.0.0/16") in opened
    assert (22, "0.0.0.0/0") not in opened
    group = one(below.of_type(SECURITY_GROUP), "game-gw-nlb")
    assert {r["fromPort"] for r in group.inputs["egress"]} == {7000}
    assert (
        "warning: hybrid-infra:loadBalancers[2].adopt.loadbalancerId "
        "(6d4f8e2a-1c3b-4e5d-9f7a-8b0c1d2e3f40): listener port-22 on 22 (SSH): a twin never "
        "carries a management port; not mirrored"
    ) in result.logs


def test_an_internal_twin_left_with_no_listener_is_never_healthy_in_dns(tmp_path):
    """game-gw with only a 6443 listener: nothing is mirrored, and the NLB side of its record
    must not look healthy (Route53 calls a CALCULATED threshold of 0 healthy)."""
    catalog = catalog_with_listener(tmp_path, "game-gw", 6443, member_port=6443)
    entries = json.loads(catalog.read_text())
    (lb,) = [e for e in entries.values() if e["name"] == "game-gw"]
    lb["listeners"] = [li for li in lb["listeners"] if li["protocol_port"] == 6443]
    catalog.write_text(json.dumps(entries))
    below = below_hlb(synth_with(lambda raw: None, octavia_catalog=catalog), "game-gw")
    assert below.of_type(LISTENER) == []
    check = one(below.of_type(HEALTH_CHECK), "game-gw-dns-nlb")
    assert check.inputs["type"] == "CALCULATED"
    assert (check.inputs["childHealthThreshold"], check.inputs.get("childHealthchecks", [])) == (
        1,
        [],
    )


def test_an_nlb_is_internal_unless_the_stack_file_says_internet_facing():
    """prod's api twin faces the internet because its entry says so; without it, internal,
    open to the VPC and Direct Connect only."""
    below = below_hlb(synth_with(lambda raw: raw["loadBalancers"][1]["nlb"].pop("scheme")), "api")
    assert one(below.of_type(NLB), "api-nlb").inputs["internal"] is True
    group = one(below.of_type(SECURITY_GROUP), "api-nlb")
    assert [r["cidrBlocks"] for r in group.inputs["ingress"]] == [["10.10.0.0/16", "172.16.0.0/14"]]
