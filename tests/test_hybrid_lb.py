"""HybridLoadBalancer and WeightedFailover over the real program and stack files (mocks), and
the Octavia → NLB mapping tables."""

import json

import pytest
from pulumi.runtime import rpc

from components.dns import effective_weights
from model.nlb_mapping import (
    MappingError,
    OctaviaListener,
    map_health_check,
    map_listeners,
)
from model.octavia import Monitor
from model.stack import parse
from providers.octavia_nlb_sync import octavia
from tests.fixtures.octavia import post_lb
from tools.synth import ProgramFailed, stack_config, synthesize

HLB = "hybrid-infra:lb:HybridLoadBalancer"
DNS = "hybrid-infra:dns:WeightedFailover"
NLB = "aws:lb/loadBalancer:LoadBalancer"
TG = "aws:lb/targetGroup:TargetGroup"
SYNC = "pulumi-python:dynamic/hybrid-infra:OctaviaNlbSync"
OCTAVIA_POOL = "openstack:loadbalancer/pool:Pool"
OCTAVIA_MEMBER = "openstack:loadbalancer/member:Member"
RECORD = "aws:route53/record:Record"
CHECK = "aws:route53/healthCheck:HealthCheck"


@pytest.fixture(scope="module")
def prod():
    return synthesize("prod")


def hlb(result, name):
    (found,) = [r for r in result.of_type(HLB) if r.name == name]
    return found


def descendants(result, component):
    found, frontier = [], [component.urn]
    while frontier:
        urn = frontier.pop()
        for r in result.resources:
            if r.parent == urn:
                found.append(r)
                frontier.append(r.urn)
    return found


def of(resources, type_):
    return [r for r in resources if r.type == type_]


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_every_octavia_lb_has_exactly_one_nlb_twin_and_one_sync(stack):
    result = synthesize(stack)
    config = parse(
        {
            k.split(":", 1)[1]: json.loads(v)
            for k, v in stack_config(stack)[0].items()
            if k.startswith("hybrid-infra:")
        }
    )
    lbs = result.of_type(HLB)
    discovered = list(result.outputs.get("discovered", {}))  # tagged LBs (self-service)
    expected = [lb.name for lb in config.load_balancers] + discovered
    assert sorted(lb.name for lb in lbs) == sorted(expected)
    for lb in lbs:
        below = descendants(result, lb)
        nlbs = of(below, NLB)
        assert len(nlbs) == 1
        assert nlbs[0].inputs["loadBalancerType"] == "network"
        assert nlbs[0].inputs["enableCrossZoneLoadBalancing"] is True
        assert len(of(below, SYNC)) == 1


def test_each_octavia_pool_has_one_target_group_and_one_binding(prod):
    shop = hlb(prod, "shop")
    below = descendants(prod, shop)
    pools = of(below, OCTAVIA_POOL)
    groups = of(below, TG)
    (sync,) = of(below, SYNC)
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
    created = [r for r in prod.of_type(HLB) if of(descendants(prod, r), OCTAVIA_MEMBER)]
    assert created, "prod declares no Octavia members in create mode"
    for component in created:
        below = descendants(prod, component)
        (sync,) = of(below, SYNC)
        members = of(below, OCTAVIA_MEMBER)
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
    api_groups = of(descendants(prod, hlb(prod, "api")), TG)
    (group,) = api_groups
    assert group.inputs["targetType"] == "ip"
    assert group.inputs["proxyProtocolV2"] is True  # PROXYV2 pool
    assert group.inputs["deregistrationDelay"] == 60
    check = group.inputs["healthCheck"]
    assert (check["protocol"], check["interval"], check["timeout"]) == ("TCP", 5, 3)
    assert (check["healthyThreshold"], check["unhealthyThreshold"]) == (2, 3)


def test_each_dns_name_has_two_weighted_health_checked_records(prod):
    config = parse(
        {
            k.split(":", 1)[1]: json.loads(v)
            for k, v in stack_config("prod")[0].items()
            if k.startswith("hybrid-infra:")
        }
    )
    for spec in config.load_balancers:
        (dns,) = [d for d in prod.of_type(DNS) if d.name == f"{spec.name}-dns"]
        below = descendants(prod, dns)
        records = {r.inputs["setIdentifier"]: r for r in of(below, RECORD)}
        assert set(records) == {"octavia", "nlb"}
        assert all(r.inputs["name"] == spec.dns.fqdn for r in records.values())
        assert records["octavia"].inputs["weightedRoutingPolicies"] == [
            {"weight": spec.dns.weights.octavia}
        ]
        assert records["nlb"].inputs["weightedRoutingPolicies"] == [
            {"weight": spec.dns.weights.nlb}
        ]
        assert records["nlb"].inputs["aliases"][0]["evaluateTargetHealth"] is True
        checks = {c.name: c for c in of(below, CHECK)}
        assert set(checks) == {f"{spec.name}-dns-octavia", f"{spec.name}-dns-nlb"}
        assert all(r.inputs["healthCheckId"] for r in records.values())


def test_health_check_parameters_follow_config(prod):
    shop_checks = {c.name: c for c in of(descendants(prod, hlb(prod, "shop")), CHECK)}
    octavia = shop_checks["shop-dns-octavia"].inputs
    assert (octavia["type"], octavia["port"], octavia["resourcePath"]) == ("HTTPS", 443, "/healthz")
    assert (octavia["requestInterval"], octavia["failureThreshold"]) == (10, 3)
    assert shop_checks["shop-dns-nlb"].inputs["fqdn"] == "shop-nlb-0123456789.elb.amazonaws.com"


def test_private_vip_uses_the_alarm_and_internal_nlb_its_healthy_hosts(prod):
    checks = {c.name: c.inputs for c in of(descendants(prod, hlb(prod, "game-gw")), CHECK)}
    assert checks["game-gw-dns-octavia"]["type"] == "CLOUDWATCH_METRIC"
    assert checks["game-gw-dns-octavia"]["cloudwatchAlarmName"] == "game-gw-octavia-vip-unreachable"
    assert checks["game-gw-dns-nlb"]["type"] == "CLOUDWATCH_METRIC"
    (alarm,) = of(descendants(prod, hlb(prod, "game-gw")), "aws:cloudwatch/metricAlarm:MetricAlarm")
    assert alarm.inputs["metricName"] == "HealthyHostCount"


def test_adopted_lb_mirrors_the_described_listeners(prod):
    below = descendants(prod, hlb(prod, "game-gw"))
    assert not of(below, "openstack:loadbalancer/loadBalancer:LoadBalancer")
    (group,) = of(below, TG)
    assert (group.inputs["protocol"], group.inputs["port"]) == ("TCP_UDP", 7000)
    (sync,) = of(below, SYNC)
    assert sync.inputs["loadbalancer_id"] == "6d4f8e2a-1c3b-4e5d-9f7a-8b0c1d2e3f40"
    assert sync.inputs["owns_target_groups"] is True
    assert sync.inputs["max_deregister_fraction"] == 0.3


def test_traffic_carrying_resources_are_protected_in_prod_only(prod):
    for type_ in (NLB, "openstack:loadbalancer/loadBalancer:LoadBalancer"):
        assert all(r.protect for r in prod.of_type(type_))
    dev = synthesize("dev")
    assert not any(r.protect for r in dev.resources)


def test_member_security_group_never_opens_to_the_world(prod):
    rules = prod.of_type("openstack:networking/secGroupRule:SecGroupRule")
    assert rules
    assert {r.inputs["remoteIpPrefix"] for r in rules} == {"172.16.0.0/22", "10.10.0.0/16"}


def test_drain_switch_zeroes_one_side():
    raw = {
        k.split(":", 1)[1]: json.loads(v)
        for k, v in stack_config("prod")[0].items()
        if k.startswith("hybrid-infra:")
    }
    raw["loadBalancers"][0]["dns"]["drain"] = "octavia"
    spec = parse(raw).load_balancers[0].dns
    assert effective_weights(spec).octavia == 0
    assert effective_weights(spec).nlb == 10


def prod_raw() -> dict:
    return {
        k.split(":", 1)[1]: json.loads(v)
        for k, v in stack_config("prod")[0].items()
        if k.startswith("hybrid-infra:")
    }


def synth_prod(raw: dict):
    config, secret_keys = stack_config("prod")
    config = {k: v for k, v in config.items() if not k.startswith("hybrid-infra:")}
    config.update({f"hybrid-infra:{k}": json.dumps(v) for k, v in raw.items()})
    return synthesize("prod", config=config, secret_keys=secret_keys)


def test_internal_nlb_health_is_every_target_group_having_a_healthy_host():
    """Mocks, program shape. NLB publishes HealthyHostCount per target group (dimensions
    LoadBalancer + TargetGroup); an alarm on LoadBalancer alone never has data and, treating
    missing data as breaching, would keep the NLB out of DNS for good."""
    raw = prod_raw()
    api = raw["loadBalancers"][1]
    api["nlb"]["scheme"] = "internal"
    second = json.loads(json.dumps(api["create"]["listeners"][0]))
    api["create"]["listeners"].append({**second, "name": "admin", "port": 8443})
    result = synth_prod(raw)
    below = descendants(result, hlb(result, "api"))
    alarms = of(below, "aws:cloudwatch/metricAlarm:MetricAlarm")
    assert len(alarms) == len(of(below, TG)) == 2
    for alarm in alarms:
        assert alarm.inputs["metricName"] == "HealthyHostCount"
        assert set(alarm.inputs["dimensions"]) == {"LoadBalancer", "TargetGroup"}
    (combined,) = [c for c in of(below, CHECK) if c.name == "api-dns-nlb"]
    assert combined.inputs["type"] == "CALCULATED"
    assert combined.inputs["childHealthThreshold"] == 2
    assert len(combined.inputs["childHealthchecks"]) == 2


def test_udp_target_groups_never_set_client_ip_preservation(prod):
    """AWS keeps client IP preservation on for UDP and TCP_UDP groups and refuses "false"."""
    groups = {g.inputs["protocol"]: g for g in prod.of_type(TG)}
    assert {"TCP_UDP", "TCP"} <= set(groups)
    assert "preserveClientIp" not in groups["TCP_UDP"].inputs
    assert groups["TCP"].inputs["preserveClientIp"] == "false"


def test_an_adopted_lb_with_udp_needs_the_return_path_stated():
    raw = prod_raw()
    del raw["loadBalancers"][2]["nlb"]["udpRepliesOverDx"]
    with pytest.raises(ProgramFailed) as failed:
        synth_prod(raw)
    assert str(failed.value.cause).startswith(
        "hybrid-infra:loadBalancers[2].nlb.udpRepliesOverDx: listeners port-7000: the NLB twin "
        "would carry UDP"
    )


def test_openstack_password_reaches_the_provider_and_every_sync_as_a_secret(prod):
    """Mocks, program shape: one credential for all OpenStack consumers, never in plaintext."""
    (provider,) = [r for r in prod.resources if r.type == "pulumi:providers:openstack"]
    assert rpc.is_rpc_secret(provider.inputs["password"])
    syncs = prod.of_type(SYNC)
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


# --- mapping tables -------------------------------------------------------------------------

TCP = Monitor("TCP", 10, 5, 3, 3)


@pytest.mark.parametrize(
    ("listeners", "expected"),
    [
        ([("TCP", 443, "TCP")], [("TCP", 443, False)]),
        ([("UDP", 53, "UDP")], [("UDP", 53, False)]),
        ([("TCP", 443, "TCP"), ("UDP", 443, "UDP")], [("TCP_UDP", 443, False)]),
        ([("HTTP", 80, "HTTP")], [("TCP", 80, False)]),
        ([("HTTPS", 443, "HTTPS")], [("TCP", 443, False)]),
        ([("TERMINATED_HTTPS", 443, "HTTP")], [("TCP", 443, False)]),
        ([("TCP", 443, "PROXY")], [("TCP", 443, True)]),
        ([("HTTPS", 443, "PROXYV2")], [("TCP", 443, True)]),
        ([("TCP", 80, "TCP"), ("TCP", 443, "TCP")], [("TCP", 80, False), ("TCP", 443, False)]),
    ],
)
def test_listener_protocol_table(listeners, expected):
    octavia = [
        OctaviaListener(f"l{i}", protocol, port, f"p{i}", pool, TCP)
        for i, (protocol, port, pool) in enumerate(listeners)
    ]
    mapped = map_listeners(octavia)
    assert [(m.protocol, m.port, m.proxy_protocol_v2) for m in mapped] == expected


@pytest.mark.parametrize(
    ("listeners", "message"),
    [
        ([("SCTP", 9000, "SCTP")], "protocol SCTP has no NLB equivalent"),
        ([("UDP", 53, "TCP")], "a UDP listener cannot feed a TCP pool"),
        ([("TCP", 443, "UDP")], "a TCP listener cannot feed a UDP pool"),
        ([("TCP", 443, "PROXY"), ("UDP", 443, "UDP")], "proxy protocol needs a TCP-only"),
        ([("TCP", 443, "TCP"), ("HTTPS", 443, "HTTPS")], "share port 443 on the same transport"),
    ],
)
def test_unsupported_listener_combinations_are_clear_errors(listeners, message):
    octavia = [
        OctaviaListener(f"l{i}", protocol, port, f"p{i}", pool, None)
        for i, (protocol, port, pool) in enumerate(listeners)
    ]
    with pytest.raises(MappingError, match=message):
        map_listeners(octavia)


@pytest.mark.parametrize(
    ("monitor", "expected"),
    [
        (Monitor("TCP", 10, 5, 3, 3), ("TCP", 10, 5, 3, 3, None, None)),
        (Monitor("PING", 10, 5, 3, 3), ("TCP", 10, 5, 3, 3, None, None)),
        (Monitor("UDP-CONNECT", 5, 3, 2, 2), ("TCP", 5, 3, 2, 2, None, None)),
        (
            Monitor("HTTP", 30, 10, 5, 4, "/healthz", "200"),
            ("HTTP", 30, 10, 5, 4, "/healthz", "200"),
        ),
        (Monitor("HTTPS", 10, 5, 3, 3), ("HTTPS", 10, 5, 3, 3, "/", "200-399")),
        # NLB limits: interval >= 5, thresholds 2..10, timeout <= interval
        (Monitor("TCP", 1, 1, 1, 1), ("TCP", 5, 2, 2, 2, None, None)),
    ],
)
def test_health_check_table(monitor, expected):
    check = map_health_check(monitor)
    assert (
        check.protocol,
        check.interval,
        check.timeout,
        check.healthy_threshold,
        check.unhealthy_threshold,
        check.path,
        check.matcher,
    ) == expected


def test_unknown_monitor_type_is_a_clear_error():
    with pytest.raises(MappingError, match="health monitor type SCTP has no NLB equivalent"):
        map_health_check(Monitor("SCTP", 10, 5, 3, 3))


# --- adopt mode against the real Octavia API -------------------------------------------------


def test_adopt_mode_mirrors_a_real_octavia_lb(octavia_conn, project_id, prod_cloud):
    body = {
        "name": "adopted",
        "project_id": project_id,
        "vip_subnet_id": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
        "listeners": [
            {
                "name": "web",
                "protocol": "HTTP",
                "protocol_port": 80,
                "default_pool": {
                    "name": "web",
                    "protocol": "HTTP",
                    "lb_algorithm": "ROUND_ROBIN",
                    "healthmonitor": {
                        "type": "HTTP",
                        "delay": 15,
                        "timeout": 4,
                        "max_retries": 4,
                        "max_retries_down": 2,
                        "url_path": "/ready",
                        "expected_codes": "200-204",
                    },
                    "members": [{"address": "172.17.3.1", "protocol_port": 8080}],
                },
            },
            {
                "name": "dns",
                "protocol": "UDP",
                "protocol_port": 53,
                "default_pool": {
                    "name": "dns",
                    "protocol": "UDP",
                    "lb_algorithm": "SOURCE_IP",
                    "members": [{"address": "172.17.3.1", "protocol_port": 5353}],
                },
            },
        ],
    }
    lb_id = post_lb(octavia_conn, body)
    pools = {p.name: p.id for p in octavia_conn.load_balancer.pools(loadbalancer_id=lb_id)}

    config, secret_keys = stack_config("prod")
    lbs = json.loads(config["hybrid-infra:loadBalancers"])
    lbs[2]["adopt"]["loadbalancerId"] = lb_id
    config["hybrid-infra:loadBalancers"] = json.dumps(lbs)
    result = synthesize("prod", config=config, secret_keys=secret_keys, octavia_catalog=None)

    below = descendants(result, hlb(result, "game-gw"))
    groups = {(g.inputs["protocol"], g.inputs["port"]): g.inputs for g in of(below, TG)}
    assert set(groups) == {("TCP", 80), ("UDP", 53)}
    check = groups[("TCP", 80)]["healthCheck"]
    assert (check["protocol"], check["interval"], check["timeout"]) == ("HTTP", 15, 4)
    assert (check["healthyThreshold"], check["unhealthyThreshold"]) == (4, 2)
    assert (check["path"], check["matcher"]) == ("/ready", "200-204")
    listeners = sorted(
        (li.inputs["protocol"], li.inputs["port"]) for li in of(below, "aws:lb/listener:Listener")
    )
    assert listeners == [("TCP", 80), ("UDP", 53)]
    (sync,) = of(below, SYNC)
    assert sync.inputs["loadbalancer_id"] == lb_id
    assert sorted(b["pool_id"] for b in sync.inputs["bindings"]) == sorted(pools.values())
    rules = of(below, "openstack:networking/secGroupRule:SecGroupRule")
    assert {(r.inputs["protocol"], r.inputs["portRangeMin"]) for r in rules} == {
        ("tcp", 8080),
        ("udp", 5353),
    }


def test_adopting_an_unknown_lb_names_the_key(prod_cloud):
    config, secret_keys = stack_config("prod")
    with pytest.raises(ProgramFailed) as failed:
        synthesize("prod", config=config, secret_keys=secret_keys, octavia_catalog=None)
    message = str(failed.value.cause)
    assert message.startswith("hybrid-infra:loadBalancers[2].adopt.loadbalancerId: Octavia")
    assert "not found" in message
