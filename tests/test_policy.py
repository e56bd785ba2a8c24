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
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pulumi_policy
import pytest
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

from model.rules import REQUIRED_TAGS
from policy import hybrid_policies as hp
from tests.synthesis import (
    AWS_PROVIDER,
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

POLICY_DIR = Path(__file__).resolve().parent.parent / "policy"


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


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_every_real_stack_passes_every_policy(stacks, stack):
    assert evaluate(stacks[stack]) == []


def test_the_types_the_policies_key_on_are_the_ones_the_program_registers(stacks):
    """A renamed type token would make a policy silently check nothing."""
    registered = {r.type for rs in stacks.values() for r in rs}
    keyed = {hp.HYBRID_LB, hp.NLB, hp.TARGET_GROUP, hp.SYNC, hp.OCTAVIA_POOL, hp.RECORD}
    keyed |= {hp.AWS_SECURITY_GROUP, hp.OPENSTACK_RULE, *hp.TRAFFIC_TYPES}
    assert keyed <= registered


def test_rules_are_mandatory_except_tags():
    levels = {p.name: p.enforcement_level for p in hp.POLICIES}
    assert levels.pop("required-tags") is pulumi_policy.EnforcementLevel.ADVISORY
    assert set(levels.values()) == {pulumi_policy.EnforcementLevel.MANDATORY}
    assert len(levels) == 6


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
    assert evaluate(mutated) == []


def test_unknown_values_during_preview_are_not_violations(prod):
    record = one(prod, "shop-dns-nlb", RECORD)
    group = one(prod, "shop-port-443", TARGET_GROUP)
    mutated = with_inputs(prod, record, healthCheckId=Unknown())
    mutated = with_inputs(mutated, group, healthCheck=Unknown())
    assert evaluate(mutated) == []


# --- management ports ------------------------------------------------------------------------


def test_ssh_open_to_the_world_on_an_nlb_security_group_is_a_violation(prod):
    group = one(prod, "shop-nlb", SECURITY_GROUP)
    ssh = {"protocol": "tcp", "fromPort": 22.0, "toPort": 22.0, "cidrBlocks": ["0.0.0.0/0"]}
    violations = evaluate(with_inputs(prod, group, ingress=[*group.inputs["ingress"], ssh]))
    (v,) = of_policy(violations, "no-management-ports-open-to-world")
    assert v.level == "mandatory" and v.urn == group.urn
    assert "22 (SSH)" in v.message


def test_every_protocol_open_to_ipv6_anywhere_is_a_violation(prod):
    group = one(prod, "api-nlb", SECURITY_GROUP)
    everything = {"protocol": "-1", "fromPort": 0.0, "toPort": 0.0, "ipv6CidrBlocks": ["::/0"]}
    violations = evaluate(with_inputs(prod, group, ingress=[everything]))
    (v,) = of_policy(violations, "no-management-ports-open-to-world")
    assert "6443 (Kubernetes API)" in v.message and "9876 (Octavia)" in v.message


def test_a_neutron_rule_opening_keystone_to_anyone_is_a_violation(prod):
    rule = next(r for r in prod if r.type == SECGROUP_RULE)
    violations = evaluate(
        with_inputs(prod, rule, portRangeMin=5000.0, portRangeMax=5000.0, remoteIpPrefix=None)
    )
    (v,) = of_policy(violations, "no-management-ports-open-to-world")
    assert "5000 (Keystone)" in v.message and "0.0.0.0/0" in v.message


def test_a_service_port_open_to_the_world_is_allowed(prod):
    """prod's shop NLB is internet-facing on 443: that is its job."""
    group = one(prod, "shop-nlb", SECURITY_GROUP)
    assert any("0.0.0.0/0" in rule["cidrBlocks"] for rule in group.inputs["ingress"])
    assert of_policy(evaluate(prod), "no-management-ports-open-to-world") == []


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
