"""The CrossGuard pack over what the real program registers for each stack file (mocks).

The policies are called the way the engine's analyzer calls them: resource policies get one
`ResourceValidationArgs` per resource (inputs, options, provider), stack policies get every
resource as a `PolicyResource` with parent and dependencies linked. The real stacks pass; a
mutated copy of a stack (a twin removed, a weight zeroed, SSH opened, a tag dropped...) fails
with the violation that names the problem.
"""

import dataclasses
import runpy
import sys
import tomllib
from collections.abc import Callable, Mapping, Sequence
from ipaddress import ip_address, ip_network
from pathlib import Path
from typing import Any

import pulumi_policy
import pytest
import yaml
from pulumi.output import Unknown
from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyProviderResource,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
)
from pulumi_policy.deserialize import deserialize_properties
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy

from model.management_ports import MANAGEMENT_PORTS
from model.rules.stack import REQUIRED_TAGS
from model.stackfile import ROOT
from policy import hybrid_policies as hp
from tests.support.synthesis import (
    AWS_PROVIDER,
    EKS_CLUSTER,
    GKE_CLUSTER,
    INGRESS_RULE,
    NLB,
    OCTAVIA_POOL,
    RECORD,
    SECGROUP_RULE,
    SECURITY_GROUP,
    TARGET_GROUP,
    one,
    provider_urn,
)
from tools.synth import Registered, synthesize

POLICY_DIR = ROOT / "policy"


@dataclasses.dataclass(frozen=True)
class Violation:
    policy: str
    level: str
    urn: str
    message: str


@pytest.fixture(scope="module")
def stacks() -> dict[str, tuple[Registered, ...]]:
    return {stack: synthesize(stack).resources for stack in ("dev", "staging", "prod")}


@pytest.fixture
def prod(stacks) -> list[Registered]:
    return list(stacks["prod"])


# --- the analyzer, as the engine drives it ---------------------------------------------------


def _wire(value: Any) -> Any:
    """Mock inputs → the analyzer's property form (unknowns become the preview sentinel)."""
    if isinstance(value, Unknown):
        return UNKNOWN_STRING_VALUE
    if isinstance(value, Mapping):
        return {k: _wire(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_wire(v) for v in value]
    return value


def _props(inputs: Mapping[str, Any]) -> Mapping[str, Any]:
    return unknown_checking_proxy(deserialize_properties(_wire(dict(inputs))))


def _opts(r: Registered) -> PolicyResourceOptions:
    return PolicyResourceOptions(
        r.protect, [], r.delete_before_replace, [], PolicyCustomTimeouts(0, 0, 0), [], r.parent
    )


def evaluate(
    resources: Sequence[Registered], config: Mapping[str, Mapping[str, Any]] | None = None
) -> list[Violation]:
    by_urn = {r.urn: r for r in resources}
    config = config or {}

    def provider(r: Registered) -> PolicyProviderResource | None:
        found = by_urn.get(provider_urn(r) or "")
        if found is None:
            return None
        return PolicyProviderResource(found.type, _props(found.inputs), found.urn, found.name)

    violations: list[Violation] = []
    for policy in hp.POLICIES:
        level = policy.enforcement_level.value

        def reporter(urn: str, name: str = policy.name, lvl: str = level) -> Callable:
            def report(message: str, resource_urn: str | None = None) -> None:
                violations.append(Violation(name, lvl, resource_urn or urn, message))

            return report

        if isinstance(policy, ResourceValidationPolicy):
            for r in resources:
                args = ResourceValidationArgs(
                    r.type,
                    _props(r.inputs),
                    r.urn,
                    r.name,
                    _opts(r),
                    provider(r),
                    config.get(policy.name),
                )
                policy.validate(args, reporter(r.urn))
        else:
            policy.validate(
                StackValidationArgs(_stack_resources(resources, provider), config.get(policy.name)),
                reporter(""),
            )
    return violations


def _stack_resources(
    resources: Sequence[Registered], provider: Callable[[Registered], Any]
) -> list[PolicyResource]:
    """What AnalyzeStack hands a stack policy: resources linked to parents and dependencies."""
    made = {
        r.urn: PolicyResource(
            r.type, _props(r.inputs), r.urn, r.name, _opts(r), provider(r), None, [], {}
        )
        for r in resources
    }
    for r in resources:
        made[r.urn].parent = made.get(r.parent or "")
        made[r.urn].dependencies.extend(made[d] for d in r.dependencies if d in made)
    return list(made.values())


# --- mutations -------------------------------------------------------------------------------


def replaced(resources: list[Registered], old: Registered, **changes: Any) -> list[Registered]:
    new = dataclasses.replace(old, **changes)
    return [new if r is old else r for r in resources]


def with_inputs(resources: list[Registered], old: Registered, **inputs: Any) -> list[Registered]:
    return replaced(resources, old, inputs={**old.inputs, **inputs})


def without(resources: list[Registered], old: Registered) -> list[Registered]:
    return [r for r in resources if r is not old]


def of_policy(violations: list[Violation], policy: str) -> list[Violation]:
    return [v for v in violations if v.policy == policy]


# --- the real stacks -------------------------------------------------------------------------


def new_findings(violations: list[Violation]) -> list[Violation]:
    """What a change adds to the shipped stacks' one finding, their public GKE endpoint
    (`test_the_public_gke_control_plane_is_the_one_finding_in_the_shipped_stacks`)."""
    return [v for v in violations if not (v.policy == API_POLICY and v.urn.endswith("::G"))]


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_every_real_stack_passes_every_policy(stacks, stack):
    assert new_findings(evaluate(stacks[stack])) == []


def test_the_types_the_policies_key_on_are_the_ones_the_program_registers(stacks):
    """A renamed type token would make a policy silently check nothing."""
    registered = {r.type for rs in stacks.values() for r in rs}
    keyed = {hp.HYBRID_LB, hp.NLB, hp.TARGET_GROUP, hp.SYNC, hp.OCTAVIA_POOL, hp.RECORD}
    keyed |= {hp.AWS_SECURITY_GROUP, hp.OPENSTACK_RULE, *hp.TRAFFIC_TYPES}
    assert keyed <= registered


def test_every_type_the_pack_reads_is_a_provider_resource():
    """A misspelt token would read nothing. Nova's `compute/secGroup` left pulumi-openstack in
    v5; programs on v4 still register it."""
    import pulumi_aws
    import pulumi_gcp
    import pulumi_openstack

    tokens = {*hp.READERS, *hp.FILTER_TYPES, hp.AWS_PREFIX_LIST, hp.AWS_PREFIX_LIST_ENTRY}
    tokens |= {hp.OPENSTACK_ADDRESS_GROUP, hp.GKE_CLUSTER}
    tokens -= {hp.OPENSTACK_COMPUTE_SECURITY_GROUP}
    schemas = "".join(
        Path(m.__file__).read_text() for m in (pulumi_aws, pulumi_gcp, pulumi_openstack)
    )
    assert [t for t in sorted(tokens) if f'"{t}"' not in schemas] == []


def test_rules_are_mandatory_except_tags():
    levels = {p.name: p.enforcement_level for p in hp.POLICIES}
    assert levels.pop("required-tags") is pulumi_policy.EnforcementLevel.ADVISORY
    assert set(levels.values()) == {pulumi_policy.EnforcementLevel.MANDATORY}
    assert len(levels) == 7


def test_required_tags_are_the_ones_the_config_model_requires():
    assert tuple(hp.REQUIRED_TAGS) == tuple(REQUIRED_TAGS)


def test_pack_main_builds_one_pack_with_every_policy(monkeypatch):
    """`PolicyPack(...)` blocks serving gRPC, so record the call instead of making it."""
    built = []
    monkeypatch.setattr(pulumi_policy, "PolicyPack", lambda **kw: built.append(kw))
    monkeypatch.syspath_prepend(str(POLICY_DIR))
    try:
        runpy.run_path(str(POLICY_DIR / "__main__.py"), run_name="__main__")
    finally:
        sys.modules.pop("hybrid_policies", None)
    (pack,) = built
    assert pack["name"] == hp.PACK_NAME
    assert [p.name for p in pack["policies"]] == [p.name for p in hp.POLICIES]


# --- twin and sync ---------------------------------------------------------------------------


def test_removing_the_nlb_twin_is_a_violation(prod):
    violations = evaluate(without(prod, one(prod, "shop-nlb", NLB)))
    (v,) = of_policy(violations, "hybrid-lb-has-nlb-twin-and-sync")
    assert v.level == "mandatory"
    assert "'shop' has 0 NLB twins" in v.message


def test_an_application_lb_is_not_a_twin(prod):
    nlb = one(prod, "api-nlb", NLB)
    violations = evaluate(with_inputs(prod, nlb, loadBalancerType="application"))
    (v,) = of_policy(violations, "hybrid-lb-has-nlb-twin-and-sync")
    assert "'api' has 0 NLB twins" in v.message


def test_removing_the_sync_is_a_violation(prod):
    violations = evaluate(without(prod, one(prod, "game-gw-sync")))
    (v,) = of_policy(violations, "hybrid-lb-has-nlb-twin-and-sync")
    assert "'game-gw' has 0 member syncs" in v.message


def test_an_octavia_pool_the_sync_does_not_bind_is_a_violation(prod):
    sync = one(prod, "shop-sync")
    quic = one(prod, "shop-quic", OCTAVIA_POOL)
    unbound = tuple(d for d in sync.dependencies if d != quic.urn)
    violations = evaluate(replaced(prod, sync, dependencies=unbound))
    (v,) = of_policy(violations, "hybrid-lb-has-nlb-twin-and-sync")
    assert v.urn == quic.urn
    assert "Octavia pool 'shop-quic' is not bound" in v.message


# --- health checks and weights ---------------------------------------------------------------


def test_a_target_group_without_health_check_is_a_violation(prod):
    group = one(prod, "api-https", TARGET_GROUP)
    inputs = {k: v for k, v in group.inputs.items() if k != "healthCheck"}
    (v,) = of_policy(
        evaluate(replaced(prod, group, inputs=inputs)), "nlb-target-group-health-check"
    )
    assert v.urn == group.urn


def test_a_disabled_target_group_health_check_is_a_violation(prod):
    group = one(prod, "api-https", TARGET_GROUP)
    check = {**group.inputs["healthCheck"], "enabled": False}
    violations = evaluate(with_inputs(prod, group, healthCheck=check))
    (v,) = of_policy(violations, "nlb-target-group-health-check")
    assert "disabled" in v.message


def test_a_weighted_record_without_health_check_is_a_violation(prod):
    record = one(prod, "shop-dns-nlb", RECORD)
    inputs = {k: v for k, v in record.inputs.items() if k != "healthCheckId"}
    violations = evaluate(replaced(prod, record, inputs=inputs))
    (v,) = of_policy(violations, "weighted-record-health-check")
    assert v.urn == record.urn


def test_zeroing_both_weights_of_a_name_is_a_violation(prod):
    mutated = prod
    for name in ("api-dns-octavia", "api-dns-nlb"):
        record = one(mutated, name, RECORD)
        mutated = with_inputs(mutated, record, weightedRoutingPolicies=[{"weight": 0.0}])
    (v,) = of_policy(evaluate(mutated), "weighted-records-not-all-zero")
    assert "api.example.net" in v.message


def test_draining_one_side_to_weight_zero_is_allowed(prod):
    record = one(prod, "api-dns-octavia", RECORD)
    mutated = with_inputs(prod, record, weightedRoutingPolicies=[{"weight": 0.0}])
    assert new_findings(evaluate(mutated)) == []


def test_unknown_values_during_preview_are_not_violations(prod):
    record = one(prod, "shop-dns-nlb", RECORD)
    group = one(prod, "shop-port-443", TARGET_GROUP)
    mutated = with_inputs(prod, record, healthCheckId=Unknown())
    mutated = with_inputs(mutated, group, healthCheck=Unknown())
    mutated = with_ingress(mutated, ssh_from(), {**ssh_from(), "cidrBlocks": Unknown()})
    assert new_findings(evaluate(mutated)) == []


# --- management ports and the world ---------------------------------------------------------

WORLD_POLICY = "no-management-ports-open-to-world"
API_POLICY = "cluster-api-not-open-to-world"
HALVES = ["0.0.0.0/1", "128.0.0.0/1"]


def added(
    resources: list[Registered],
    type_: str,
    name: str,
    depends_on: Sequence[Registered] = (),
    **inputs: Any,
) -> list[Registered]:
    """`resources` and one more, as a program would register it."""
    urn = f"urn:pulumi:prod::hybrid-infra::{type_}::{name}"
    deps = tuple(r.urn for r in depends_on)
    return [*resources, Registered(type_, name, urn, None, inputs, True, False, deps, None, False)]


def urns_of(violations: list[Violation], policy: str) -> set[str]:
    return {v.urn for v in of_policy(violations, policy)}


def ssh_from(*cidrs: str, protocol: str = "tcp", ports: tuple[float, float] = (22.0, 22.0)) -> dict:
    return {
        "protocol": protocol,
        "fromPort": ports[0],
        "toPort": ports[1],
        "cidrBlocks": list(cidrs),
    }


def with_ingress(prod: list[Registered], *rules: dict, group: str = "shop-nlb") -> list[Registered]:
    sg = one(prod, group, SECURITY_GROUP)
    return with_inputs(prod, sg, ingress=[*sg.inputs["ingress"], *rules])


def test_ssh_open_to_the_world_on_an_nlb_security_group_is_a_violation(prod):
    group = one(prod, "shop-nlb", SECURITY_GROUP)
    (v,) = of_policy(evaluate(with_ingress(prod, ssh_from("0.0.0.0/0"))), WORLD_POLICY)
    assert v.level == "mandatory" and v.urn == group.urn
    assert v.message.startswith("22 (SSH) open to the world: the rules of its security group")


@pytest.mark.parametrize(
    ("rules", "shown"),
    [
        # Two halves of IPv4 in one group: 0.0.0.0/0 all the same.
        ([ssh_from(*HALVES)], "0.0.0.0/0 (3,702,258,688 public IPv4 addresses)"),
        ([ssh_from(HALVES[0]), ssh_from(HALVES[1])], "0.0.0.0/0"),
        # One half alone is far more than one organisation's addresses.
        ([ssh_from("0.0.0.0/1")], "0.0.0.0/1"),
        # IPv6 halves.
        (
            [
                {**ssh_from(), "ipv6CidrBlocks": ["::/1"]},
                {**ssh_from(), "ipv6CidrBlocks": ["8000::/1"]},
            ],
            "::/0",
        ),
        # Every protocol, every port.
        ([ssh_from(*HALVES, protocol="-1", ports=(0.0, 0.0))], "0.0.0.0/0"),
        ([ssh_from("0.0.0.0/0", ports=(0.0, 65535.0))], "0.0.0.0/0"),
    ],
)
def test_the_world_is_any_set_of_rules_that_together_covers_a_public_range(prod, rules, shown):
    violations = of_policy(evaluate(with_ingress(prod, *rules)), WORLD_POLICY)
    assert violations and all(shown in v.message for v in violations)


@pytest.mark.parametrize(
    "cidrs",
    [
        ["81.2.0.0/16"],  # one organisation's block: not the world
        ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10"],  # private, however big
        ["fd00::/8", "2001:db8::/32"],  # unique local and documentation IPv6
    ],
)
def test_private_and_narrow_sources_on_a_management_port_are_allowed(prod, cidrs):
    v4 = [c for c in cidrs if ":" not in c]
    rule = {**ssh_from(*v4), "ipv6CidrBlocks": [c for c in cidrs if ":" in c]}
    assert of_policy(evaluate(with_ingress(prod, rule)), WORLD_POLICY) == []


def test_a_public_slash_15_on_ssh_is_the_world(prod):
    (v,) = of_policy(evaluate(with_ingress(prod, ssh_from("81.2.0.0/15"))), WORLD_POLICY)
    assert "131,072 public IPv4 addresses" in v.message


def test_rules_split_over_standalone_resources_of_one_group_add_up(prod):
    """Two `SecurityGroupRule`s and a `SecurityGroupIngressRule`, each alone not the world,
    on the same group: together they are."""
    group = one(prod, "api-nlb", SECURITY_GROUP)
    rules = prod
    for i, half in enumerate(["0.0.0.0/2", "64.0.0.0/2", "128.0.0.0/2"]):
        rules = added(
            rules,
            hp.AWS_SECURITY_GROUP_RULE,
            f"ssh-{i}",
            [group],
            type="ingress",
            securityGroupId="api-nlb-id",
            **ssh_from(half),
        )
    rules = added(
        rules,
        hp.AWS_INGRESS_RULE,
        "ssh-3",
        [group],
        securityGroupId="api-nlb-id",
        ipProtocol="tcp",
        fromPort=22.0,
        toPort=22.0,
        cidrIpv4="192.0.0.0/2",
    )
    found = urns_of(evaluate(rules), WORLD_POLICY)
    assert found == {r.urn for r in rules if r.name.startswith("ssh-")}
    # One organisation's /16 on each of two groups: neither group admits the world.
    apart = added(
        prod,
        hp.AWS_SECURITY_GROUP_RULE,
        "ssh-elsewhere",
        [one(prod, "shop-nlb", SECURITY_GROUP)],
        type="ingress",
        securityGroupId="shop-nlb-id",
        **ssh_from("81.2.0.0/16"),
    )
    apart = added(
        apart,
        hp.AWS_SECURITY_GROUP_RULE,
        "ssh-here",
        [group],
        type="ingress",
        securityGroupId="api-nlb-id",
        **ssh_from("81.3.0.0/16"),
    )
    assert of_policy(evaluate(apart), WORLD_POLICY) == []


def test_a_prefix_list_counts_by_its_entries_and_an_undeclared_one_as_anyone(prod):
    group = one(prod, "shop-nlb", SECURITY_GROUP)
    listed = added(prod, hp.AWS_PREFIX_LIST, "anyone", entries=[{"cidr": HALVES[0]}])
    entry_of = one(listed, "anyone")
    listed = added(
        listed,
        hp.AWS_PREFIX_LIST_ENTRY,
        "anyone-2",
        [entry_of],
        prefixListId="anyone-id",
        cidr=HALVES[1],
    )
    via_list = {"protocol": "tcp", "fromPort": 22.0, "toPort": 22.0, "prefixListIds": ["anyone-id"]}
    sg = one(listed, "shop-nlb", SECURITY_GROUP)
    mutated = replaced(
        listed,
        sg,
        inputs={**sg.inputs, "ingress": [via_list]},
        dependencies=(*sg.dependencies, entry_of.urn),
    )
    (v,) = of_policy(evaluate(mutated), WORLD_POLICY)
    assert v.urn == group.urn and "0.0.0.0/0" in v.message
    # Private entries only: allowed.
    private = added(prod, hp.AWS_PREFIX_LIST, "dx", entries=[{"cidr": "172.16.0.0/14"}])
    sg = one(private, "shop-nlb", SECURITY_GROUP)
    mutated = replaced(
        private,
        sg,
        inputs={**sg.inputs, "ingress": [{**via_list, "prefixListIds": ["dx-id"]}]},
        dependencies=(*sg.dependencies, one(private, "dx").urn),
    )
    assert of_policy(evaluate(mutated), WORLD_POLICY) == []
    # A list this stack does not declare (AWS-managed, another stack's): its entries are unseen.
    (v,) = of_policy(
        evaluate(with_ingress(prod, {**via_list, "prefixListIds": ["pl-0a1b2c3d"]})), WORLD_POLICY
    )
    assert "prefix list pl-0a1b2c3d is not declared in this stack, so counts as anyone" in v.message


def test_network_acl_rules_count_in_their_order(prod):
    """An ACL entry admits what no lower-numbered entry decided: a deny at 100 shadows an
    allow at 200; an allow at 100 is not undone by a deny at 200."""
    acl = added(prod, hp.AWS_NETWORK_ACL, "edge", ingress=[])
    edge = one(acl, "edge")

    def entry(name: str, number: float, action: str, cidr: str, acl_list=acl) -> list[Registered]:
        return added(
            acl_list,
            hp.AWS_NETWORK_ACL_RULE,
            name,
            [edge],
            networkAclId="edge-id",
            egress=False,
            ruleNumber=number,
            ruleAction=action,
            protocol="6",
            fromPort=22.0,
            toPort=22.0,
            cidrBlock=cidr,
        )

    opened = entry("allow-all", 200.0, "allow", "0.0.0.0/0")
    assert urns_of(evaluate(opened), WORLD_POLICY) == {one(opened, "allow-all").urn}
    shadowed = entry("deny-all", 100.0, "deny", "0.0.0.0/0", opened)
    assert of_policy(evaluate(shadowed), WORLD_POLICY) == []
    too_late = entry("deny-late", 300.0, "deny", "0.0.0.0/0", opened)
    assert urns_of(evaluate(too_late), WORLD_POLICY) == {one(opened, "allow-all").urn}
    inline = with_inputs(
        acl,
        edge,
        ingress=[
            {
                "ruleNo": 10.0,
                "action": "allow",
                "protocol": "-1",
                "fromPort": 0.0,
                "toPort": 0.0,
                "cidrBlock": "0.0.0.0/0",
            }
        ],
    )
    assert urns_of(evaluate(inline), WORLD_POLICY) == {edge.urn}


def test_a_neutron_rule_opening_keystone_to_anyone_is_a_violation(prod):
    rule = next(r for r in prod if r.type == SECGROUP_RULE)
    violations = evaluate(
        with_inputs(prod, rule, portRangeMin=5000.0, portRangeMax=5000.0, remoteIpPrefix=None)
    )
    (v,) = of_policy(violations, WORLD_POLICY)
    assert "5000 (Keystone)" in v.message and "0.0.0.0/0" in v.message


def test_neutron_rules_in_halves_on_one_group_add_up(prod):
    rules = [r for r in prod if r.type == SECGROUP_RULE and r.name.startswith("shop-members-tcp")]
    mutated = prod
    for rule, half in zip(rules, HALVES, strict=True):
        mutated = with_inputs(
            mutated, rule, portRangeMin=22.0, portRangeMax=22.0, remoteIpPrefix=half
        )
    assert urns_of(evaluate(mutated), WORLD_POLICY) == {r.urn for r in rules}


def test_inline_nova_security_group_rules_are_read(prod):
    """`openstack.compute.SecGroup` (pulumi-openstack v4): a rule without a CIDR is Nova's
    0.0.0.0/0."""
    for rule in (
        {"ipProtocol": "tcp", "fromPort": 22.0, "toPort": 22.0, "cidr": "0.0.0.0/0"},
        {"ipProtocol": "tcp", "fromPort": 3389.0, "toPort": 3389.0},
    ):
        nova = added(prod, hp.OPENSTACK_COMPUTE_SECURITY_GROUP, "legacy", rules=[rule])
        (v,) = of_policy(evaluate(nova), WORLD_POLICY)
        assert v.urn == one(nova, "legacy").urn
    kept = added(
        prod,
        hp.OPENSTACK_COMPUTE_SECURITY_GROUP,
        "legacy",
        rules=[{"ipProtocol": "tcp", "fromPort": 22.0, "toPort": 22.0, "self": True}],
    )
    assert of_policy(evaluate(kept), WORLD_POLICY) == []


def test_gcp_firewalls_without_source_ranges_admit_the_world(prod):
    """GCP's default source for an ingress rule with none is 0.0.0.0/0; ports are strings."""
    open_ = added(
        prod,
        hp.GCP_FIREWALL,
        "ssh",
        network="default",
        allows=[{"protocol": "tcp", "ports": ["20-30"]}],
    )
    assert urns_of(evaluate(open_), WORLD_POLICY) == {one(open_, "ssh").urn}
    tagged = added(
        prod,
        hp.GCP_FIREWALL,
        "ssh",
        network="default",
        sourceTags=["bastion"],
        allows=[{"protocol": "tcp", "ports": ["22"]}],
    )
    assert of_policy(evaluate(tagged), WORLD_POLICY) == []
    halves = prod
    for name, half, protocol in (("a", HALVES[0], "all"), ("b", HALVES[1], "tcp")):
        halves = added(
            halves,
            hp.GCP_FIREWALL,
            name,
            network="default",
            sourceRanges=[half],
            allows=[{"protocol": protocol}],
        )
    assert urns_of(evaluate(halves), WORLD_POLICY) == {one(halves, "a").urn, one(halves, "b").urn}
    denied = added(
        open_,
        hp.GCP_FIREWALL,
        "no-ssh",
        network="default",
        priority=100.0,
        denies=[{"protocol": "tcp", "ports": ["22"]}],
    )
    assert "22 (SSH)" not in " ".join(v.message for v in of_policy(evaluate(denied), WORLD_POLICY))


def test_gcp_firewall_policy_rules_and_openstack_fwaas_rules_are_read(prod):
    rule = added(
        prod,
        "gcp:compute/networkFirewallPolicyRule:NetworkFirewallPolicyRule",
        "ssh",
        firewallPolicy="edge",
        action="allow",
        direction="INGRESS",
        priority=10.0,
        match={"srcRegionCodes": ["US"], "layer4Configs": [{"ipProtocol": "tcp", "ports": ["22"]}]},
    )
    (v,) = of_policy(evaluate(rule), WORLD_POLICY)
    assert "srcRegionCodes of ssh is not declared" in v.message
    fwaas = added(
        prod,
        hp.OPENSTACK_FIREWALL_RULE,
        "rdp",
        action="allow",
        protocol="tcp",
        destinationPort="3380:3390",
    )
    (v,) = of_policy(evaluate(fwaas), WORLD_POLICY)
    assert "3389 (RDP)" in v.message


def test_a_service_port_open_to_the_world_is_allowed(prod):
    """prod's shop NLB is internet-facing on 443: that is its job."""
    group = one(prod, "shop-nlb", SECURITY_GROUP)
    assert any("0.0.0.0/0" in rule["cidrBlocks"] for rule in group.inputs["ingress"])
    assert of_policy(evaluate(prod), WORLD_POLICY) == []


def test_the_policy_and_the_program_read_one_list_of_management_ports():
    assert dict(hp.MANAGEMENT_PORTS) == dict(MANAGEMENT_PORTS)
    assert {22, 3389, 6443, 2379, 2380, 10250, 3306, 5432, 27017} <= set(MANAGEMENT_PORTS)


def test_what_is_not_public_is_what_python_calls_not_global_multicast_or_reserved():
    for block in hp.NOT_PUBLIC:
        first = ip_network(block).network_address
        assert not first.is_global or first.is_multicast or first.is_reserved, block
    for address in ("8.8.8.8", "81.2.69.1", "2a00:1450::1", "192.0.3.1"):
        assert ip_address(address).is_global


# --- the cluster API on 443 ------------------------------------------------------------------


def test_the_shipped_stacks_pass_the_pack(stacks):
    """GKE clusters are private, admitting their authorized networks only; nothing in the
    shipped stacks faces the world but the public twins' service ports."""
    for stack in ("dev", "staging", "prod"):
        assert evaluate(stacks[stack]) == []


@pytest.mark.parametrize(
    ("change", "found"),
    [
        (
            {"privateClusterConfig": {"enablePrivateEndpoint": True, "enablePrivateNodes": True}},
            False,
        ),
        (
            {"masterAuthorizedNetworksConfig": {"cidrBlocks": [{"cidrBlock": "172.16.0.0/14"}]}},
            False,
        ),
        (
            {"masterAuthorizedNetworksConfig": {"cidrBlocks": [{"cidrBlock": c} for c in HALVES]}},
            True,
        ),
        ({"masterAuthorizedNetworksConfig": {"gcpPublicCidrsAccessEnabled": True}}, True),
    ],
)
def test_a_gke_endpoint_admits_the_world_unless_private_or_narrowly_authorized(prod, change, found):
    cluster = one(prod, "G", GKE_CLUSTER)
    violations = of_policy(evaluate(with_inputs(prod, cluster, **change)), API_POLICY)
    assert bool(violations) is found


@pytest.mark.parametrize(
    ("vpc", "found"),
    [
        ({"endpointPublicAccess": True}, True),  # publicAccessCidrs default to 0.0.0.0/0
        ({}, True),  # and the endpoint is public by default
        ({"endpointPublicAccess": True, "publicAccessCidrs": HALVES}, True),
        ({"endpointPublicAccess": True, "publicAccessCidrs": ["81.2.69.0/24"]}, False),
        ({"endpointPublicAccess": False, "endpointPrivateAccess": True}, False),
    ],
)
def test_an_eks_endpoint_admits_the_world_by_default(prod, vpc, found):
    cluster = one(prod, "B", EKS_CLUSTER)
    vpc_config = {"subnetIds": cluster.inputs["vpcConfig"]["subnetIds"], **vpc}
    violations = urns_of(evaluate(with_inputs(prod, cluster, vpcConfig=vpc_config)), API_POLICY)
    assert (cluster.urn in violations) is found


def test_port_443_to_an_eks_control_plane_from_the_world_is_a_violation(prod):
    """The rules on EKS's own cluster security group (which name it through the cluster):
    443 there is the Kubernetes API, whatever the port is called."""
    rule = one(prod, "B-api-from-172.16.0.0-14", INGRESS_RULE)
    cluster = one(prod, "B", EKS_CLUSTER)
    halves = with_inputs(prod, rule, cidrIpv4=HALVES[0])
    halves = added(
        halves,
        hp.AWS_INGRESS_RULE,
        "B-api-rest",
        [cluster],
        securityGroupId="sg-B",
        ipProtocol="tcp",
        fromPort=443.0,
        toPort=443.0,
        cidrIpv4=HALVES[1],
    )
    found = of_policy(new_findings(evaluate(halves)), API_POLICY)
    assert {v.urn for v in found} == {rule.urn, one(halves, "B-api-rest").urn}
    assert all(v.message.startswith("443 (Kubernetes API) open to the world") for v in found)
    # shop's NLB admits the world on 443 too: a service, not the API.
    assert of_policy(evaluate(prod), API_POLICY) == []


# --- protection ------------------------------------------------------------------------------


def test_an_unprotected_nlb_in_prod_is_a_violation(prod):
    nlb = one(prod, "shop-nlb", NLB)
    violations = evaluate(replaced(prod, nlb, protect=False))
    (v,) = of_policy(violations, "traffic-resources-protected")
    assert v.urn == nlb.urn and "'prod'" in v.message


def test_unprotected_clusters_in_prod_are_violations(prod):
    clusters = [r for r in prod if r.type in hp.TRAFFIC_TYPES and "cluster" in r.type]
    mutated = prod
    for cluster in clusters:
        mutated = replaced(mutated, cluster, protect=False)
    found = of_policy(evaluate(mutated), "traffic-resources-protected")
    assert {v.urn for v in found} == {c.urn for c in clusters}
    assert {c.type for c in clusters} == {t for t in hp.TRAFFIC_TYPES if "cluster" in t}


def test_dev_need_not_protect_but_a_configured_stack_must(stacks):
    dev = list(stacks["dev"])
    assert not any(r.protect for r in dev if r.type in hp.TRAFFIC_TYPES)
    assert evaluate(dev) == []
    configured = {"traffic-resources-protected": {"stacks": ["dev", "prod"]}}
    found = of_policy(evaluate(dev, configured), "traffic-resources-protected")
    assert {v.urn for v in found} == {r.urn for r in dev if r.type in hp.TRAFFIC_TYPES}


# --- tags ------------------------------------------------------------------------------------


def test_a_missing_cost_center_tag_is_an_advisory_violation_on_taggable_resources(stacks):
    dev = list(stacks["dev"])
    provider = one(dev, "aws", AWS_PROVIDER)
    tags = '{"tags": {"owner": "platform", "environment": "dev"}}'
    violations = of_policy(evaluate(with_inputs(dev, provider, defaultTags=tags)), "required-tags")
    flagged = {v.urn for v in violations}
    taggable = {
        r.urn for r in dev if r.type.startswith("aws:") and r.type not in hp.UNTAGGABLE_AWS_TYPES
    }
    assert flagged == taggable
    assert one(dev, "shop-nlb", NLB).urn in flagged
    assert not any(r.type == RECORD and r.urn in flagged for r in dev)
    assert {v.level for v in violations} == {"advisory"}
    assert all("cost-center" in v.message for v in violations)


def test_a_resource_tag_completes_the_provider_defaults(stacks):
    dev = list(stacks["dev"])
    provider = one(dev, "aws", AWS_PROVIDER)
    mutated = with_inputs(dev, provider, defaultTags='{"tags": {"owner": "platform"}}')
    nlb = one(mutated, "shop-nlb", NLB)
    mutated = with_inputs(mutated, nlb, tags={"cost-center": "4100", "environment": "dev"})
    flagged = {v.urn for v in of_policy(evaluate(mutated), "required-tags")}
    assert nlb.urn not in flagged
    assert one(mutated, "shop-https", TARGET_GROUP).urn in flagged


def test_the_published_pack_installs_the_versions_the_tests_ran():
    """`pulumi policy publish` uploads policy/ alone: its own pyproject and lock must pin what
    the project's uv.lock gives (the pack these tests check), at the pack's version."""
    root = ROOT
    locked = {
        p["name"]: p["version"] for p in tomllib.loads((root / "uv.lock").read_text())["package"]
    }
    pack = tomllib.loads((root / "policy" / "pyproject.toml").read_text())["project"]
    pins = dict(d.split("==") for d in pack["dependencies"])
    assert pins == {"pulumi": locked["pulumi"], "pulumi-policy": locked["pulumi-policy"]}
    pack_lock = {
        p["name"]: p["version"]
        for p in tomllib.loads((root / "policy" / "uv.lock").read_text())["package"]
    }
    assert {name: pack_lock[name] for name in pins} == pins
    manifest = yaml.safe_load((root / "policy" / "PulumiPolicy.yaml").read_text())
    assert pack["version"] == manifest["version"]
