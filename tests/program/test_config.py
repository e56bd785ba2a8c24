"""Stack config: the real stack files load; every kind of mistake names its key path and
registers nothing."""

import copy
from typing import Any

import pytest

from model import fleet
from model.config import ConfigError
from model.stack import parse
from model.stackfile import ROOT
from tests.fixtures.program import Mutation, config_with, raw_of
from tests.support.synthesis import AWS_PROVIDER
from tools.synth import ProgramFailed, stack_config, synthesize


def run_with(raw: dict[str, Any]) -> ProgramFailed:
    """How the program fails on the prod stack file with `raw` as its hybrid-infra values."""
    config, secret_keys = config_with(raw)
    with pytest.raises(ProgramFailed) as failed:
        synthesize("prod", config=config, secret_keys=secret_keys)
    return failed.value


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_stack_file_runs_under_mocks(stack, synth):
    result = synth(stack)
    assert result.outputs["environment"] == stack
    assert result.of_type(AWS_PROVIDER)


def test_prod_is_protected_and_dev_is_not():
    config, _ = stack_config("prod")
    assert config["hybrid-infra:protect"] == "true"
    assert parse(raw_of()).protect is True
    dev, _ = stack_config("dev")
    assert "hybrid-infra:protect" not in dev


def test_secure_values_are_secret_placeholders(tmp_path):
    text = (ROOT / "Pulumi.prod.yaml").read_text()
    text = text.replace("config:\n", "config:\n  openstack:password:\n    secure: v1:abc:def\n", 1)
    (tmp_path / "Pulumi.prod.yaml").write_text(text)
    config, secret_keys = stack_config("prod", tmp_path)
    assert "openstack:password" in secret_keys
    assert config["openstack:password"] == "[secret]"


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_no_stack_file_holds_the_openstack_password(stack):
    """Every run of a stack can decrypt its secrets, previews included, and the stack's password
    would override the reader's clouds.yaml entry (docs/delivery.md): the credential comes from
    the run's clouds.yaml only."""
    config, _ = stack_config(stack)
    assert "openstack:password" not in config


def test_prod_has_three_clusters_a_twin_six_prods_and_a_redundant_segment():
    config = parse(raw_of())
    assert set(fleet.clusters(config)) == {"A", "B", "C", "G", "A-eks"}
    assert set(config.prods) == {"A-1", "A-2", "B-1", "B-2", "C-1", "C-2"}
    redundant = [s for s in config.segments if len(s.prods) == 2]
    assert [s.prods for s in redundant] == [("A-2", "B-1")]
    assert {lb.name for lb in config.load_balancers} == {"shop", "api", "game-gw"}
    assert any(lb.adopt for lb in config.load_balancers)


def _set(path: str, value: Any) -> Mutation:
    """Mutation that sets a dotted/indexed path (`loadBalancers.1.dns.weights.nlb`)."""

    def apply(raw: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = raw
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return apply


def _delete(path: str) -> Mutation:
    def apply(raw: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = raw
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        del node[last]

    return apply


def _copy(source: str, target: str) -> Mutation:
    def apply(raw: dict[str, Any]) -> None:
        node: Any = raw
        for part in source.split("."):
            node = node[int(part)] if isinstance(node, list) else node[part]
        _set(target, copy.deepcopy(node))(raw)

    return apply


def _append_copy(path: str) -> Mutation:
    def apply(raw: dict[str, Any]) -> None:
        node: Any = raw
        for part in path.split("."):
            node = node[int(part)] if isinstance(node, list) else node[part]
        node.append(copy.deepcopy(node[0]))

    return apply


L0 = "hybrid-infra:loadBalancers[0].create.listeners"
L1 = "hybrid-infra:loadBalancers[1].create.listeners[0]"

BAD = {
    "weight-out-of-range": (
        _set("loadBalancers.1.dns.weights.nlb", 300),
        "hybrid-infra:loadBalancers[1].dns.weights.nlb: Input should be less than or equal to 255",
    ),
    "weights-both-zero": (
        _set("loadBalancers.0.dns.weights", {"octavia": 0, "nlb": 0}),
        "hybrid-infra:loadBalancers[0].dns.weights: Value error, octavia and nlb weights must not",
    ),
    "weight-wrong-type": (
        _set("loadBalancers.0.dns.weights", {"octavia": "lots"}),
        "hybrid-infra:loadBalancers[0].dns.weights.octavia: Input should be a valid integer",
    ),
    "typo-in-nested-key": (
        _set("loadBalancers.0.dns.weight", {"octavia": 50}),
        "hybrid-infra:loadBalancers[0].dns.weight: unknown key (did you mean 'weights'?)",
    ),
    "typo-in-top-level-key": (
        _set("loadBalancer", []),
        "hybrid-infra:loadBalancer: unknown key (did you mean 'loadBalancers'?)",
    ),
    "missing-required-top-level": (
        _delete("aws"),
        "hybrid-infra:aws: required key is missing",
    ),
    "missing-required-nested": (
        _delete("loadBalancers.0.dns.zone"),
        "hybrid-infra:loadBalancers[0].dns.zone: required key is missing",
    ),
    "bad-vpc-cidr": (
        _set("aws.vpcCidrs", ["10.10.0.0/33"]),
        "hybrid-infra:aws.vpcCidrs[0]: Input is not a valid IPv4 network",
    ),
    "cidr-with-host-bits": (
        _set("onPrem.dxCidrs", ["172.16.0.1/14"]),
        "hybrid-infra:onPrem.dxCidrs[0]: Input is not a valid IPv4 network",
    ),
    "bad-member-ip": (
        _set("loadBalancers.0.create.listeners.0.pool.members.0.address", "172.17.10.300"),
        "hybrid-infra:loadBalancers[0].create.listeners[0].pool.members[0].address: Input is not",
    ),
    "member-outside-dx": (
        _set("loadBalancers.0.create.listeners.0.pool.members.0.address", "192.168.1.5"),
        "hybrid-infra:loadBalancers[0].create.listeners[0].pool.members[0].address: 192.168.1.5 "
        "is outside onPrem.dxCidrs",
    ),
    "port-out-of-range": (
        _set("loadBalancers.0.create.listeners.0.port", 70000),
        "hybrid-infra:loadBalancers[0].create.listeners[0].port: Input should be less than",
    ),
    "listener-port-clash": (
        _append_copy("loadBalancers.0.create.listeners"),
        "hybrid-infra:loadBalancers[0].create.listeners: port clash, 2 listeners on TCP 443",
    ),
    "duplicate-lb-name": (
        _set("loadBalancers.1.name", "shop"),
        "hybrid-infra:loadBalancers: duplicate name 'shop'",
    ),
    "adopt-and-create": (
        _copy("loadBalancers.0.create", "loadBalancers.2.create"),
        "hybrid-infra:loadBalancers[2]: Value error, give exactly one of create, adopt",
    ),
    "create-without-listeners": (
        _set("loadBalancers.0.create.listeners", []),
        "hybrid-infra:loadBalancers[0].create.listeners: List should have at least 1 item",
    ),
    "neither-adopt-nor-create": (
        _delete("loadBalancers.2.adopt"),
        "hybrid-infra:loadBalancers[2]: Value error, give exactly one of create, adopt",
    ),
    "bad-adopt-uuid": (
        _set("loadBalancers.2.adopt.loadbalancerId", "not-a-uuid"),
        "hybrid-infra:loadBalancers[2].adopt.loadbalancerId: Input should be a valid UUID",
    ),
    "private-vip-without-alarm": (
        _delete("loadBalancers.2.dns.octaviaAlarm"),
        "hybrid-infra:loadBalancers[2].dns: Value error, octaviaVip is private",
    ),
    "public-check-on-a-private-address": (
        _set("loadBalancers.0.dns.octaviaAddress", "172.16.0.10"),
        "hybrid-infra:loadBalancers[0].dns.octaviaAddress: 172.16.0.10 is private",
    ),
    "fraction-above-one": (
        _set("loadBalancers.2.nlb.maxDeregisterFraction", 1.5),
        "hybrid-infra:loadBalancers[2].nlb.maxDeregisterFraction: Input should be less than",
    ),
    "unknown-cluster-kind": (
        _set("clusters.B.kind", "openshift"),
        "hybrid-infra:clusters.B.kind: must be one of onprem, eks, gke, existing (got 'openshift')",
    ),
    "bad-kubernetes-version": (
        _set("clusters.C.kubernetesVersion", "v1.30"),
        "hybrid-infra:clusters.C.kubernetesVersion: String should match pattern",
    ),
    "node-group-sizes": (
        _set("clusters.B.nodeGroups.0.minSize", 20),
        "hybrid-infra:clusters.B.nodeGroups[0]: Value error, need minSize <= desiredSize",
    ),
    "prod-on-unknown-cluster": (
        _set("prods.C-1.cluster", "D"),
        "hybrid-infra:prods.C-1.cluster: unknown cluster 'D'",
    ),
    "segment-on-unknown-prod": (
        _set("segments.1.prods", ["C-9"]),
        "hybrid-infra:segments[1].prods[0]: unknown prod 'C-9'",
    ),
    "redundant-segment-on-one-cluster": (
        _set("segments.2.prods", ["A-1", "A-2"]),
        "hybrid-infra:segments[2].prods: a redundant segment needs Prods on two different clusters",
    ),
    "duplicate-segment": (
        _set("segments.1.name", "staff"),
        "hybrid-infra:segments: duplicate name 'staff'",
    ),
    "negative-wave": (
        _set("release.wave", -1),
        "hybrid-infra:release.wave: Input should be greater than or equal to 0",
    ),
    "missing-required-tag": (
        _delete("tags.cost-center"),
        "hybrid-infra:tags.cost-center: required tag is missing",
    ),
    "list-instead-of-map": (
        _set("clusters", ["A", "B"]),
        "hybrid-infra:clusters: must be a map of cluster name to cluster",
    ),
    "bad-subnet-id": (
        _set("aws.subnetIds", ["subnet-1"]),
        "hybrid-infra:aws.subnetIds[0]: String should match pattern",
    ),
    # Octavia's own rules (docs/cloud-rules.md): its API refuses these only at `up` time.
    "pool-protocol-the-listener-cannot-take": (
        _set("loadBalancers.0.create.listeners.1.pool.protocol", "TCP"),
        f"{L0}[1].pool.protocol: Octavia refuses a TCP pool behind a UDP listener",
    ),
    "terminated-https-without-certificate": (
        _set("loadBalancers.1.create.listeners.0.protocol", "TERMINATED_HTTPS"),
        f"{L1}.defaultTlsContainerRef: a TERMINATED_HTTPS listener needs",
    ),
    "certificate-on-a-tcp-listener": (
        _set("loadBalancers.0.create.listeners.0.defaultTlsContainerRef", "https://kms/v1/c/1"),
        f"{L0}[0].defaultTlsContainerRef: only a TERMINATED_HTTPS listener takes",
    ),
    "https-monitor-on-a-udp-pool": (
        _set("loadBalancers.0.create.listeners.1.pool.healthMonitor.type", "HTTPS"),
        f"{L0}[1].pool.healthMonitor.type: a UDP pool takes a HTTP, TCP, UDP-CONNECT monitor",
    ),
    "udp-connect-monitor-on-a-tcp-pool": (
        _set("loadBalancers.1.create.listeners.0.pool.healthMonitor.type", "UDP-CONNECT"),
        f"{L1}.pool.healthMonitor.type: UDP-CONNECT monitors only UDP pools",
    ),
    "udp-connect-monitor-too-often": (
        _set(
            "loadBalancers.0.create.listeners.1.pool.healthMonitor",
            {"type": "UDP-CONNECT", "delay": 2, "timeout": 1, "maxRetries": 3},
        ),
        f"{L0}[1].pool.healthMonitor.delay: a UDP-CONNECT monitor needs a delay of at least 3",
    ),
    "url-path-on-a-tcp-monitor": (
        _set("loadBalancers.1.create.listeners.0.pool.healthMonitor.urlPath", "/healthz"),
        f"{L1}.pool.healthMonitor.urlPath: only HTTP and HTTPS monitors take it",
    ),
    "same-member-twice-in-a-pool": (
        _set(
            "loadBalancers.0.create.listeners.0.pool.members.1",
            {"address": "172.17.10.11", "port": 8443},
        ),
        f"{L0}[0].pool.members: 172.17.10.11:8443 is listed 2 times",
    ),
    "public-record-without-its-address": (
        _delete("loadBalancers.0.dns.octaviaAddress"),
        "hybrid-infra:loadBalancers[0].dns.octaviaAddress: required with octaviaVip: public",
    ),
    "prods-larger-than-their-cluster": (
        _set("prods.C-1.capacity", 5800),
        "hybrid-infra:clusters.C.capacity: 6000 users, but the Prods on C (C-1, C-2) are sized "
        "for 6300",
    ),
    "udp-on-the-twin-without-a-return-path": (
        _delete("loadBalancers.0.nlb.udpRepliesOverDx"),
        f"{L0}[1].protocol: the NLB twin would carry UDP, and NLB always preserves the client IP",
    ),
    "tcp-and-udp-on-one-port-with-different-members": (
        lambda raw: raw["loadBalancers"][0]["create"]["listeners"][1]["pool"]["members"].pop(),
        f"{L0}[1].pool.members: port 443 is one TCP_UDP target group on the NLB",
    ),
    "prods-without-an-edge-proxy": (
        _delete("edge"),
        "hybrid-infra:edge: Prods are reached through the edge proxy",
    ),
    "edge-default-segment-unknown": (
        _set("edge.defaultSegment", "consumer-wst"),
        "hybrid-infra:edge.defaultSegment: unknown segment 'consumer-wst' (did you mean",
    ),
    "edge-address-for-an-unknown-prod": (
        lambda raw: raw["edge"].update(addresses={"B-3": "b-3.example.net:8080"}),
        "hybrid-infra:edge.addresses.B-3: unknown prod (did you mean 'B-2'?)",
    ),
    "edge-source-range-with-host-bits": (
        _set("edge.sourceRanges", ["172.16.0.0/14", "10.10.0.1/16"]),
        "hybrid-infra:edge.sourceRanges[1]: Value error, '10.10.0.1/16' has host bits set; "
        "write the range as 10.10.0.0/16",
    ),
    "edge-source-range-not-a-range": (
        _set("edge.sourceRanges", ["office"]),
        "hybrid-infra:edge.sourceRanges[0]: Value error, 'office' is not a CIDR",
    ),
    "edge-scheme-unknown": (
        _set("edge.scheme", "public"),
        "hybrid-infra:edge.scheme: Input should be 'internal' or 'internet-facing'",
    ),
    # The self-service fence (docs/cloud-rules.md): no twin carries a management port, and
    # discovered twins are internal unless allowed one by one.
    "management-port-on-a-listener": (
        _set("loadBalancers.1.create.listeners.0.port", 22),
        f"{L1}.port: 22 (SSH) is a management port, and load balancer api would put it behind",
    ),
    "management-port-on-the-members": (
        _set("loadBalancers.1.create.listeners.0.pool.members.2.port", 6443),
        f"{L1}.pool.members[2].port: 6443 (Kubernetes API) is a management port",
    ),
    "discovered-twins-public-by-default": (
        _set(
            "discovery",
            {
                "defaults": {
                    "zone": "example.net",
                    "checkPort": 443,
                    "nlb": {"scheme": "internet-facing"},
                }
            },
        ),
        "hybrid-infra:discovery.defaults.nlb.scheme: a tag would put every tagged LB on the",
    ),
    "allow-public-by-name": (
        _set("discovery", {"defaults": {"zone": "example.net"}, "allowPublic": ["reports"]}),
        "hybrid-infra:discovery.allowPublic[0]: Input should be a valid UUID",
    ),
    "allow-zones-not-a-zone": (
        _set("discovery", {"defaults": {"zone": "example.net"}, "allowZones": ["Example"]}),
        "hybrid-infra:discovery.allowZones[0]: String should match pattern",
    ),
    "one-edge-replica-that-a-drain-could-never-evict": (
        _set("edge.replicas", 1),
        "hybrid-infra:edge.replicas: Input should be greater than or equal to 2",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_config_names_key_path_and_registers_nothing(case):
    mutate, expected = BAD[case]
    raw = raw_of()
    mutate(raw)
    failed = run_with(raw)
    assert isinstance(failed.cause, ConfigError)
    assert any(p.startswith(expected) for p in failed.cause.problems), failed.cause.problems
    assert failed.registered == ()


def test_a_config_error_names_the_stack_file_to_fix():
    raw = raw_of()
    _set("loadBalancers.1.dns.weights.nlb", 300)(raw)
    failed = run_with(raw)
    assert "Fix them in Pulumi.prod.yaml and run again" in str(failed.cause)


def test_every_problem_is_reported_at_once():
    raw = raw_of()
    _set("loadBalancers.1.dns.weights.nlb", 300)(raw)
    _set("clusters.B.kind", "openshift")(raw)
    _set("prods.C-1.capacity", 0)(raw)
    _set("aws.vpcId", "vpc-nope")(raw)
    with pytest.raises(ConfigError) as error:
        parse(raw)
    paths = [p.split(": ")[0] for p in error.value.problems]
    assert paths == sorted(
        [
            "hybrid-infra:aws.vpcId",
            "hybrid-infra:clusters.B.kind",
            "hybrid-infra:loadBalancers[1].dns.weights.nlb",
            "hybrid-infra:prods.C-1.capacity",
        ]
    )
    assert "nothing was changed" in str(error.value)


def test_twin_name_cannot_shadow_a_configured_cluster():
    raw = raw_of()
    raw["clusters"]["A-eks"] = copy.deepcopy(raw["clusters"]["B"])
    with pytest.raises(ConfigError, match=r"clusters\.A\.twin: the twin would be named A-eks"):
        parse(raw)


def test_tcp_and_udp_on_one_port_is_not_a_clash():
    config = parse(raw_of())
    shop = config.load_balancers[0]
    assert {(li.protocol, li.port) for li in shop.create.listeners} == {("TCP", 443), ("UDP", 443)}
