"""`tools.verify`'s judging core, on the answers' recorded shapes, and the outputs it reads.

The judges are pure: each takes what an API answered and returns rows. The shapes here are the
ones the APIs document (Route53 API reference `GetHealthCheckStatus`, ELBv2 `DescribeTargetHealth`
with its reason codes, the Kubernetes `apps/v1` Deployment status), for the states moto and the
local servers never produce: a checker region that fails, a target that fails its checks.
The same judges run on real answers in tests/live/test_verify_live.py and
tests/live/test_verify_kube.py.
"""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest

from model.config import AppAlerts
from tools.verify import alerts, clusters, dns, nlb, routing, verify
from tools.verify.__main__ import main
from tools.verify.context import Context
from tools.verify.outputs import Dns, LoadBalancer, Prod, Segment, Sync, Weights, parse
from tools.verify.report import Redactor, Row, as_json, error, exit_code, ok, table
from tools.verify.runner import Probe, Unchecked, fold, run

ARN = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/shop-port-443/0123abcd"
SUCCESS = "Success: HTTP Status Code 200, OK"
TIMED_OUT = (
    "Failure: Connection timed out. The endpoint or the internet connection is down, or requests"
    " are being blocked by your firewall."
)


def observation(region: str, status: str, ip: str = "15.177.2.33") -> dict[str, Any]:
    """One `HealthCheckObservation` as GetHealthCheckStatus returns it."""
    return {
        "Region": region,
        "IPAddress": ip,
        "StatusReport": {"Status": status, "CheckedTime": "2026-11-30T10:00:00Z"},
    }


# --- DNS ------------------------------------------------------------------------------------


def test_a_check_healthy_from_every_checker_is_green():
    seen = [observation(r, SUCCESS) for r in ("us-east-1", "eu-west-1", "ap-southeast-1")]
    row = dns.judge_observations("shop.example.net octavia", seen)
    assert row == ok(dns.HEALTH, "shop.example.net octavia", "healthy: 3 checkers in 3 region(s)")


def test_failing_checker_regions_are_named_even_while_route53_counts_the_endpoint_healthy():
    seen = [observation(r, SUCCESS) for r in ("us-east-1", "us-west-1", "eu-west-1")]
    seen += [observation("ap-northeast-1", TIMED_OUT), observation("sa-east-1", TIMED_OUT)]
    row = dns.judge_observations("shop.example.net nlb", seen)
    assert row.result == "FAIL"
    assert row.detail.startswith("2 of 5 checkers fail, Route53 still counts it healthy")
    assert f"ap-northeast-1: {TIMED_OUT}" in row.detail
    assert f"sa-east-1: {TIMED_OUT}" in row.detail
    assert "us-east-1" not in row.detail


def test_a_check_failing_nearly_everywhere_is_one_route53_fails_over():
    seen = [observation("us-east-1", SUCCESS)]
    seen += [observation(f"region-{i}", TIMED_OUT) for i in range(7)]
    row = dns.judge_observations("api.example.net octavia", seen)
    assert row.result == "FAIL"
    assert "Route53 counts it unhealthy and answers with the other side" in row.detail


def test_a_check_without_observations_is_not_a_pass():
    assert dns.judge_observations("x nlb", []).result == "ERROR"


def test_a_calculated_check_is_healthy_only_while_its_children_are():
    children = [
        ok(dns.HEALTH, "child a", "healthy"),
        dns.judge_observations("child b", [observation("us-east-1", TIMED_OUT)]),
    ]
    row = dns.judge_calculated("game-gw.example.net nlb", 2, children)
    assert row.result == "FAIL"
    assert row.detail.startswith("1 of 2 child checks healthy (needs 2): child b: ")
    assert dns.judge_calculated("x", 2, children[:1] * 2).result == "ok"


def lb(**dns_changes: Any) -> LoadBalancer:
    settings: dict[str, Any] = {
        "zone": "example.net",
        "weights": Weights(90, 10),
        "octavia_address": "203.0.113.10",
    }
    return LoadBalancer(
        "shop",
        "shop.example.net",
        "shop-nlb-0123.elb.eu-west-1.amazonaws.com",
        Dns(**{**settings, **dns_changes}),
        None,
    )


def records(octavia_weight: int = 90, alias: str = "shop-nlb-0123.elb.eu-west-1.amazonaws.com."):
    """Both weighted records as ListResourceRecordSets returns them."""
    return [
        {
            "Name": "shop.example.net.",
            "Type": "A",
            "SetIdentifier": "nlb",
            "Weight": 10,
            "AliasTarget": {
                "HostedZoneId": "Z32O12XQLNTSW2",
                "DNSName": f"dualstack.{alias}",
                "EvaluateTargetHealth": True,
            },
            "HealthCheckId": "hc-nlb",
        },
        {
            "Name": "shop.example.net.",
            "Type": "A",
            "SetIdentifier": "octavia",
            "Weight": octavia_weight,
            "TTL": 60,
            "ResourceRecords": [{"Value": "203.0.113.10"}],
            "HealthCheckId": "hc-octavia",
        },
    ]


def test_both_weighted_sides_answer_as_the_stack_set_them():
    assert dns.judge_record(lb(), "octavia", records()).detail == "203.0.113.10, weight 90"
    assert dns.judge_record(lb(), "nlb", records()).detail == (
        "alias shop-nlb-0123.elb.eu-west-1.amazonaws.com, weight 10"
    )


def test_a_side_that_answers_elsewhere_or_at_another_weight_fails():
    row = dns.judge_record(lb(), "octavia", records(octavia_weight=0))
    assert row.result == "FAIL" and row.detail == "weight 0, the stack sets 90"
    moved = dns.judge_record(lb(), "nlb", records(alias="other-nlb.elb.amazonaws.com."))
    assert moved.result == "FAIL"
    assert "aliases other-nlb.elb.amazonaws.com, not shop-nlb-0123" in moved.detail
    gone = dns.judge_record(lb(), "nlb", records()[1:])
    assert gone.result == "FAIL" and "set identifier 'nlb'" in gone.detail


def test_a_drained_side_at_weight_zero_is_what_the_stack_asked_for():
    row = dns.judge_record(lb(weights=Weights(0, 10)), "octavia", records(octavia_weight=0))
    assert row.result == "ok" and row.detail.endswith("weight 0 (drained)")
    down = dns.judge_observations("shop.example.net octavia", [observation("us-east-1", TIMED_OUT)])
    assert dns.drained(down).result == "skip"
    assert dns.drained(down).detail.startswith("drained (weight 0), so not failed: 1 of 1")


# --- NLB ------------------------------------------------------------------------------------


def described(ip: str, state: str = "healthy", reason: str | None = None) -> dict[str, Any]:
    """One `TargetHealthDescription` as DescribeTargetHealth returns it (an NLB's reason codes:
    ELBv2 API reference, `TargetHealth`)."""
    health: dict[str, Any] = {"State": state}
    if reason:
        health |= {"Reason": reason, "Description": "Health checks failed"}
    return {
        "Target": {"Id": ip, "Port": 8443, "AvailabilityZone": "all"},
        "HealthCheckPort": "8443",
        "TargetHealth": health,
    }


def targets(*descriptions: dict[str, Any]) -> list[nlb.Target]:
    return [nlb.Target.from_description(d) for d in descriptions]


def test_unhealthy_targets_are_named_with_their_reason_code():
    found = targets(
        described("172.17.10.11"),
        described("172.17.10.12", "unhealthy", "Target.FailedHealthChecks"),
        described("172.17.10.13", "unused", "Target.NotInUse"),
        described("172.17.10.14", "draining", "Target.DeregistrationInProgress"),
    )
    row = nlb.judge_health("shop tg/shop-port-443", found)
    assert row.result == "FAIL"
    assert row.detail == (
        "2 of 3 not healthy: 172.17.10.12:8443 unhealthy Target.FailedHealthChecks, "
        "172.17.10.13:8443 unused Target.NotInUse"
    )


def test_targets_in_their_first_checks_say_to_look_again():
    found = targets(described("172.17.10.11", "initial", "Elb.InitialHealthChecking"))
    row = nlb.judge_health("tg", found)
    assert row.result == "FAIL" and "run verify again in a minute" in row.detail


def test_a_group_with_no_serving_target_serves_nobody():
    row = nlb.judge_health("tg", targets(described("172.17.10.11", "draining")))
    assert row.result == "FAIL" and row.detail.startswith("no target")


def sync(owned: list[str], owns: bool = False) -> Sync:
    return Sync("lb-id", (("pool", ARN),), owns, {ARN: frozenset(owned)})


def members(*ips: str, weight: int = 1) -> list[nlb.Member]:
    return [nlb.Member(ip, 8443, weight) for ip in ips]


def test_a_stale_target_is_the_deregistration_the_sync_has_pending():
    """172.17.10.13 left Octavia after the last `up`: the sync still owns it, so its planner
    plans to deregister it."""
    owned = ["172.17.10.11:8443", "172.17.10.12:8443", "172.17.10.13:8443"]
    live = targets(*(described(f"172.17.10.1{i}") for i in (1, 2, 3)))
    row = nlb.judge_targets("t", sync(owned), ARN, [members("172.17.10.11", "172.17.10.12")], live)
    assert row.result == "FAIL"
    assert row.detail.startswith(
        "sync pending +0 -1: deregister 172.17.10.13:8443 (no longer serving in Octavia)"
    )


def test_a_member_drained_in_octavia_is_a_pending_deregistration_too():
    owned = ["172.17.10.11:8443", "172.17.10.12:8443"]
    live = targets(described("172.17.10.11"), described("172.17.10.12"))
    pools = [members("172.17.10.11") + members("172.17.10.12", weight=0)]
    assert nlb.judge_targets("t", sync(owned), ARN, pools, live).result == "FAIL"


def test_a_target_registered_by_hand_is_named_but_left_alone():
    owned = ["172.17.10.11:8443"]
    live = targets(described("172.17.10.11"), described("10.10.0.9"))
    row = nlb.judge_targets("t", sync(owned), ARN, [members("172.17.10.11")], live)
    assert row.result == "ok"
    assert row.detail == (
        "1 targets = Octavia's serving members; registered by hand, left alone: 10.10.0.9:8443"
    )
    owner = nlb.judge_targets("t", sync(owned, owns=True), ARN, [members("172.17.10.11")], live)
    assert owner.result == "FAIL" and "deregister 10.10.0.9:8443" in owner.detail


def test_targets_on_their_way_out_are_no_pending_change():
    """A member drained in Octavia was deregistered by the last sync: its target drains for
    the deregistration delay, and the sync has nothing more to do about it."""
    live = targets(described("172.17.10.11"), described("172.17.10.12", "draining"))
    owner = sync(["172.17.10.11:8443"], owns=True)
    row = nlb.judge_targets("t", owner, ARN, [members("172.17.10.11")], live)
    assert row == ok(nlb.TARGETS, "t", "1 targets = Octavia's serving members")


# --- clusters -------------------------------------------------------------------------------

PROD = Prod("C-1", "C", "2.3.1", "prod-c-1", "app")


def deployment(image: str = "registry.example.net/shop/web:2.3.1", **status: Any) -> dict:
    """An `apps/v1` Deployment as the API returns it, rolled out unless `status` says not."""
    return {
        "metadata": {"name": "app", "namespace": "prod-c-1", "generation": 4},
        "spec": {
            "replicas": 3,
            "template": {"spec": {"containers": [{"name": "app", "image": image}]}},
        },
        "status": {
            "observedGeneration": 4,
            "replicas": 3,
            "updatedReplicas": 3,
            "readyReplicas": 3,
            "availableReplicas": 3,
            "conditions": [
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
            ],
            **status,
        },
    }


BUDGET = {"spec": {"maxUnavailable": 1}, "status": {"disruptionsAllowed": 1}}
SCALER = {"spec": {"minReplicas": 3, "maxReplicas": 30}}


def test_a_prod_available_at_its_version_with_pdb_and_hpa_is_green():
    row = clusters.judge_prod(PROD, deployment(), BUDGET, SCALER)
    assert row == ok(
        clusters.PROD,
        "C-1",
        "Available 3/3 at 2.3.1 on C; PDB (maxUnavailable 1, 1 disruption(s) allowed), HPA "
        "(3-30 replicas)",
    )


@pytest.mark.parametrize(
    ("given", "says"),
    [
        (
            {"deployment": deployment("registry.example.net:5000/shop/web:2.3.0")},
            "runs 2.3.0, the release plan says 2.3.1",
        ),
        (
            {"deployment": deployment(updatedReplicas=1, availableReplicas=3, replicas=4)},
            "rolling out: 1 of 3 updated, 3 available",
        ),
        (
            {"deployment": deployment(observedGeneration=3)},
            "its controller has not acted on the latest change yet",
        ),
        (
            {
                "deployment": deployment(
                    conditions=[
                        {"type": "Available", "status": "False", "message": "0 of 3 available"}
                    ]
                )
            },
            "not Available (0 of 3 available)",
        ),
        ({"deployment": None}, "no Deployment app in prod-c-1 on C"),
        ({"budget": None}, "no PodDisruptionBudget app in prod-c-1 on C"),
        ({"scaler": None}, "no HorizontalPodAutoscaler app in prod-c-1 on C"),
    ],
)
def test_a_prod_that_is_not_at_its_version_and_whole_fails_saying_why(given, says):
    parts = {"deployment": deployment(), "budget": BUDGET, "scaler": SCALER, **given}
    row = clusters.judge_prod(PROD, parts["deployment"], parts["budget"], parts["scaler"])
    assert row.result == "FAIL" and says in row.detail


# --- routing --------------------------------------------------------------------------------

STAFF = Segment("staff", ("C-2",), ("B-1",))
WEST = Segment("consumer-west", ("B-2",), ())


@pytest.mark.parametrize(
    ("answer", "result", "says"),
    [
        (routing.Answer(200, "C-2"), "ok", "reached C-2 (routes: C-2), HTTP 200"),
        (routing.Answer(404, "C-2"), "ok", "reached C-2 (routes: C-2), HTTP 404"),
        (routing.Answer(200, "A-1"), "FAIL", "reached A-1, but the routing table names C-2"),
        (routing.Answer(200, "B-1"), "FAIL", "reached the fallback B-1: none of its Prods"),
        (routing.Answer(200, "B-2"), "FAIL", "run verify from a source in edge.trustedSources"),
        (routing.Answer(503, routing.NO_SERVER), "FAIL", "no Prod answered (HTTP 503)"),
        (routing.Answer(200, None), "FAIL", "without X-Hybrid-Prod"),
    ],
)
def test_a_segment_must_reach_a_prod_its_routes_name(answer, result, says):
    row = routing.judge_route("A staff", STAFF, WEST, answer)
    assert row.result == result and says in row.detail


# --- alerts ---------------------------------------------------------------------------------


def test_a_prod_whose_rules_cannot_fire_fails():
    rules = {"C-1": [{"name": "ProdErrorRate", "health": "ok"}]}
    assert alerts.judge("C-1", alerts.Watched(rules, {"C-1": 2}), AppAlerts()).result == "ok"
    blind = alerts.judge("C-1", alerts.Watched(rules, {}), AppAlerts())
    assert blind.result == "FAIL" and 'http_requests_total{hybrid_infra_prod="C-1"}' in blind.detail
    broken = [{"name": "ProdErrorRate", "health": "err", "lastError": "bad_data: parse error"}]
    row = alerts.judge("C-1", alerts.Watched({"C-1": broken}, {"C-1": 2}), AppAlerts())
    assert row.result == "FAIL" and "rule ProdErrorRate fails: bad_data: parse error" in row.detail


# --- outputs --------------------------------------------------------------------------------


def test_a_stack_never_deployed_names_each_missing_output_once():
    problems = parse({}).problems
    assert [(p.subject, p.result) for p in problems] == [
        ("loadBalancers", "ERROR"),
        ("clusters", "ERROR"),
        ("releasePlan", "ERROR"),
        ("routing", "ERROR"),
    ]
    assert all("never deployed, or by an older program version" in p.detail for p in problems)


def test_outputs_of_an_older_program_name_the_missing_keys_and_keep_the_rest(tmp_path):
    raw = {
        "loadBalancers": {"shop": {"fqdn": "shop.example.net", "nlbDnsName": "nlb"}},
        "clusters": {},
        "releasePlan": {"waves": []},
        "routing": {"segments": {}},
    }
    outputs = parse(raw)
    assert [p.subject for p in outputs.problems] == [
        "loadBalancers.shop.dns",
        "loadBalancers.shop.sync",
    ]
    assert [lb.name for lb in outputs.load_balancers] == ["shop"]
    assert outputs.problems_of(["clusters", "routing"]) == []


def test_kubeconfigs_read_without_show_secrets_say_how_to_read_them_once():
    raw = {
        "clusters": {"A": {"kind": "existing"}, "B": {"kind": "eks"}},
        "kubeconfigs": "[secret]",
        "releasePlan": {"waves": []},
    }
    ctx = Context(parse(raw))
    rows = verify(ctx, ["clusters"])
    assert [(r.check, r.subject, r.result) for r in rows] == [("access", "kubeconfigs", "ERROR")]
    assert "--show-secrets" in rows[0].detail and "not checked: 2 cluster" in rows[0].detail


def test_every_credential_of_a_kubeconfig_is_known_to_the_redactor():
    kubeconfig = (
        "apiVersion: v1\nkind: Config\nusers:\n- name: a\n  user:\n    token: s3cret-token-123\n"
        "    client-key-data: a2V5LWtleS1rZXk=\n"
    )
    outputs = parse({"clusters": {"A": {"kind": "existing"}}, "kubeconfigs": {"A": kubeconfig}})
    redact = Redactor(outputs.secrets())
    assert (
        redact("refused s3cret-token-123 and a2V5LWtleS1rZXk=") == "refused [secret] and [secret]"
    )


def test_the_released_prods_focus_verify_on_them_their_clusters_and_their_segments():
    raw = {
        "clusters": {"A": {"kind": "onprem"}, "C": {"kind": "onprem"}},
        "kubeconfigs": {},
        "releasePlan": {
            "waves": [
                {"prods": [{"prod": p, "cluster": p[0], "version": "2.3.1"}]}
                for p in ("C-2", "C-1", "A-1")
            ]
        },
        "prods": {
            p: {"cluster": p[0], "namespace": f"prod-{p.lower()}", "deployment": "app"}
            for p in ("C-2", "C-1", "A-1")
        },
        "routing": {
            "segments": {
                "staff": {"routes": [{"prod": "C-2"}]},
                "trial": {"routes": [{"prod": "C-1"}], "fallbacks": [{"prod": "A-1"}]},
                "consumer": {"routes": [{"prod": "A-1"}], "fallbacks": [{"prod": "C-1"}]},
            }
        },
    }
    focused = parse(raw).focused(["C-2", "C-1"])
    assert [p.name for p in focused.prods] == ["C-1", "C-2"]
    assert [s.name for s in focused.segments] == ["staff", "trial"]
    assert focused.focus == {"C"}
    assert [p.subject for p in clusters.probes(Context(focused))] == ["C", "C-1", "C-2"]


# --- running and rendering ------------------------------------------------------------------


def test_one_cause_that_stops_many_checks_is_one_line():
    def unreachable() -> list[Row]:
        raise Unchecked("cluster A's API at https://a does not answer (refused)", "cluster A")

    probes = [Probe("cluster", "A", unreachable), Probe("prod", "A-1", unreachable)]
    probes += [Probe("prod", "B-1", lambda: [ok("prod", "B-1", "fine")])]
    rows = run(probes, workers=3)
    assert rows == [
        error(
            "access",
            "cluster A",
            "cluster A's API at https://a does not answer (refused) (not checked: 1 cluster, "
            "1 prod)",
        ),
        ok("prod", "B-1", "fine"),
    ]
    assert fold([(ok("x", "y", ""), None)]) == [ok("x", "y", "")]


def test_the_table_and_the_json_say_the_same_and_the_exit_code_follows():
    rows = [ok("dns", "shop.example.net octavia", "fine"), error("alerts", "prometheus", "none")]
    assert table(rows).splitlines() == [
        "check   subject                   result  detail",
        "dns     shop.example.net octavia  ok      fine",
        "alerts  prometheus                ERROR   none",
    ]
    document = json.loads(as_json(rows))
    assert document["green"] is False
    assert document["rows"][1] == {
        "check": "alerts",
        "subject": "prometheus",
        "result": "ERROR",
        "detail": "none",
    }
    assert exit_code(rows) == 1 and exit_code(rows[:1]) == 0


# --- the command ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ([], "the following arguments are required: --stack"),
        (["--stack", "prod", "--only", "dnss"], "argument --only: invalid choice: 'dnss'"),
        (["--stack", "prod", "--edge", "A"], "--edge A: give CLUSTER=URL"),
        (["--stack", "prod", "--prometheus", "prom:9090"], "prom:9090: give a URL"),
        (["--stack", "prod", "--workers", "0"], "--workers must be at least 1"),
        (["--stack", "prod", "--outputs", "/nonexistent/o.json"], "cannot read /nonexistent"),
    ],
)
def test_a_usage_error_is_one_line_and_exit_2(args, says, capsys):
    assert main(args, environ={}) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and says in err


def test_without_the_pulumi_cli_the_outputs_cannot_be_read_and_it_says_how_else(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["--stack", "prod"], environ={}) == 2
    err = capsys.readouterr().err
    assert err == (
        "error: `pulumi` not found: it reads stack prod's outputs; install the Pulumi CLI (or "
        "give --outputs FILE)\n"
    )


def test_outputs_that_are_not_json_are_refused_without_showing_them(tmp_path, capsys):
    path = tmp_path / "outputs.json"
    path.write_text('{"kubeconfigs": {"A": "token: s3cret-token-123"')
    assert main(["--stack", "prod", "--outputs", str(path)], environ={}) == 2
    err = capsys.readouterr().err
    assert "is not JSON (line 1)" in err and "s3cret" not in err


def kubeconfig(server: str, token: str) -> str:
    return (
        "apiVersion: v1\nkind: Config\ncurrent-context: a\n"
        f"clusters:\n- name: a\n  cluster:\n    server: {server}\n"
        f"users:\n- name: a\n  user:\n    token: {token}\n"
        "contexts:\n- name: a\n  context:\n    cluster: a\n    user: a\n"
    )


def test_credentials_never_reach_the_output_whatever_goes_wrong(tmp_path, capsys):
    """A cluster that does not answer (a closed port), and a kubeconfig broken on the very line
    that holds its token: each one line, neither showing the token."""
    token = "hybrid-verify-s3cret-0123456789abcdef"
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        server = f"https://127.0.0.1:{closed.getsockname()[1]}"
    raw = {
        "clusters": {"A": {"kind": "existing"}, "B": {"kind": "existing"}},
        "kubeconfigs": {
            "A": kubeconfig(server, token),
            "B": kubeconfig(server, token).replace(f"token: {token}", f"token: [{token}"),
        },
        "releasePlan": {"waves": []},
    }
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(raw))
    for output in ("--json", None):
        args = ["--stack", "prod", "--outputs", str(path), "--only", "clusters"]
        assert main([*args, *filter(None, [output])], environ={}) == 1
        out, err = capsys.readouterr()
        assert token not in out and token not in err
        assert f"cluster A's API at {server} does not answer" in out
        assert "the kubeconfig of cluster B in the outputs is not YAML (line" in out
