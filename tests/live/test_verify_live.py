"""`tools.verify` against real servers: the Octavia v2 API, moto (ELBv2, Route53), the real
HAProxy in front of local Prods, and a real Prometheus (tests/fixtures/verify_world.py builds
the world and its outputs). Every check is shown green on a healthy world, then failing when
its subject is broken: a stale target, a record at the wrong weight, a segment routed to the
wrong Prod, a Prod on its fallback, an alert rule without samples.

What moto cannot give: Route53 reports every health check healthy from one checker, and every
registered target is `healthy`. The failing checker regions and unhealthy targets are judged on
their documented shapes in tests/unit/test_verify.py. Cluster checks need the local Kubernetes
clusters: tests/live/test_verify_kube.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from model.stackfile import ROOT
from tests.fixtures.prometheus import Prometheus
from tests.fixtures.verify_world import PRODS, Routing, outputs, weighted
from tools.verify import verify
from tools.verify.__main__ import main
from tools.verify.context import Context
from tools.verify.outputs import parse
from tools.verify.report import Row
from tools.verify.runner import Meter

REQUESTS = ('http_requests_total{code="200"} 1200', 'http_requests_total{code="500"} 3')
WITHOUT_CLUSTERS = ("dns", "nlb", "routing", "alerts")


@pytest.fixture
def watched(prometheus: Prometheus) -> Prometheus:
    prometheus.load_rules(PRODS)
    prometheus.serve({prod: REQUESTS for prod in PRODS})
    return prometheus


def run(
    raw: dict[str, Any],
    routing: Routing | None = None,
    prometheus: Prometheus | None = None,
    areas: tuple[str, ...] = WITHOUT_CLUSTERS,
    meter: Meter | None = None,
) -> list[Row]:
    ctx = Context(
        parse(raw),
        meter=meter or Meter(),
        prometheus=(prometheus.url,) if prometheus else (),
        edges=routing.urls() if routing else {},
    )
    return verify(ctx, areas)


def by_subject(rows: list[Row], check: str) -> dict[str, Row]:
    return {r.subject: r for r in rows if r.check == check}


def test_a_healthy_platform_is_green_in_every_area_with_one_read_per_answer_needed(
    load_balancer, edges, watched
):
    shop = load_balancer()
    meter = Meter()
    rows = run(outputs([shop], edges), edges, watched, meter=meter)
    assert [r for r in rows if r.result != "ok"] == []
    assert by_subject(rows, "dns")["shop.example.net octavia"].detail == ("203.0.113.10, weight 90")
    assert by_subject(rows, "health check")["shop.example.net nlb"].detail.startswith("healthy")
    assert by_subject(rows, "nlb targets")["shop tg/shop-443"].detail == (
        "2 targets = Octavia's serving members"
    )
    assert by_subject(rows, "nlb health")["shop tg/shop-443"].detail == "2 of 2 healthy"
    routed = by_subject(rows, "routing")
    assert set(routed) == {
        f"{cluster} {segment}"
        for cluster in ("A", "C")
        for segment in ("staff", "trial", "consumer", "(unknown segment)")
    }
    assert routed["A trial"].detail.startswith("reached C-1 (routes: C-1)")
    assert routed["C (unknown segment)"].detail.startswith("reached A-1 (routes: A-1)")
    assert by_subject(rows, "alerts")["C-1"].detail == (
        "rules ProdErrorRate, ProdUnavailable loaded; 2 series of http_requests_total"
    )
    # The zone and each pool, group and Prometheus read once, whatever number of probes ask.
    assert meter.counts == {
        "route53 ListHostedZonesByName": 1,
        "route53 ListResourceRecordSets": 1,
        "route53 GetHealthCheck": 2,
        "route53 GetHealthCheckStatus": 2,
        "octavia GET loadbalancer": 1,
        "octavia GET members": 1,
        "elbv2 DescribeTargetHealth": 1,
        "edge GET": 8,
        "prometheus rules": 1,
        "prometheus query": 1,
    }


def test_a_stale_target_and_a_missing_one_are_the_sync_s_pending_change(load_balancer, elbv2):
    shop = load_balancer(members=[("172.17.10.11", 8443), ("172.17.10.12", 8443)])
    shop.octavia.remove(shop.pool, "172.17.10.12")
    row = by_subject(run(outputs([shop]), areas=("nlb",)), "nlb targets")["shop tg/shop-443"]
    assert row.result == "FAIL"
    assert row.detail.startswith(
        "sync pending +0 -1: deregister 172.17.10.12:8443 (no longer serving in Octavia)"
    )

    shop.octavia.add(shop.pool, "172.17.10.13", 8443)
    row = by_subject(run(outputs([shop]), areas=("nlb",)), "nlb targets")["shop tg/shop-443"]
    assert "register 172.17.10.13:8443 (serving in Octavia, not a target)" in row.detail


def test_a_target_registered_by_hand_is_named_and_left_alone(load_balancer, elbv2):
    shop = load_balancer()
    elbv2.register_targets(
        TargetGroupArn=shop.target_group, Targets=[{"Id": "10.10.0.9", "Port": 8443}]
    )
    row = by_subject(run(outputs([shop]), areas=("nlb",)), "nlb targets")["shop tg/shop-443"]
    assert row.result == "ok"
    assert row.detail.endswith("registered by hand, left alone: 10.10.0.9:8443")


def test_a_target_group_that_is_gone_fails(load_balancer, elbv2):
    shop = load_balancer()
    elbv2.delete_target_group(TargetGroupArn=shop.target_group)
    row = by_subject(run(outputs([shop]), areas=("nlb",)), "nlb targets")["shop tg/shop-443"]
    assert row.result == "FAIL" and row.detail.endswith("is gone: run `pulumi up`")


def test_a_record_at_another_weight_or_a_side_removed_fails(load_balancer, route53, elbv2):
    shop = load_balancer()
    nlb = elbv2.describe_load_balancers(Names=["shop-nlb"])["LoadBalancers"][0]
    weighted(route53, shop.zone_id, shop.fqdn, shop.checks, nlb, octavia=0, nlb_weight=10)
    rows = by_subject(run(outputs([shop]), areas=("dns",)), "dns")
    assert rows["shop.example.net octavia"].result == "FAIL"
    assert rows["shop.example.net octavia"].detail == "weight 0, the stack sets 90"
    assert rows["shop.example.net nlb"].result == "ok"

    (record,) = [
        r
        for r in route53.list_resource_record_sets(HostedZoneId=shop.zone_id)["ResourceRecordSets"]
        if r.get("SetIdentifier") == "nlb"
    ]
    route53.change_resource_record_sets(
        HostedZoneId=shop.zone_id,
        ChangeBatch={"Changes": [{"Action": "DELETE", "ResourceRecordSet": record}]},
    )
    gone = by_subject(run(outputs([shop]), areas=("dns",)), "dns")["shop.example.net nlb"]
    assert gone.result == "FAIL" and "this side never answers" in gone.detail


def test_a_segment_routed_to_another_prod_fails(edges):
    edges.route({**edges.segments, "staff": ["C-1"]})
    rows = by_subject(run(outputs(routing=edges), edges, areas=("routing",)), "routing")
    for cluster in ("A", "C"):
        assert rows[f"{cluster} staff"].result == "FAIL"
        assert rows[f"{cluster} staff"].detail == "reached C-1, but the routing table names C-2"
        assert rows[f"{cluster} trial"].result == "ok"


def test_an_unknown_segment_must_reach_the_default_segment(edges):
    edges.route(dict(edges.segments), default="staff")
    rows = by_subject(run(outputs(routing=edges), edges, areas=("routing",)), "routing")
    assert rows["A (unknown segment)"].result == "FAIL"
    assert rows["A (unknown segment)"].detail == "reached C-2, but the routing table names A-1"
    assert rows["A staff"].result == "ok"


def test_a_segment_whose_prod_is_down_is_on_its_fallback_and_fails(edges):
    edges.prods["C-1"].kill()
    rows = by_subject(run(outputs(routing=edges), edges, areas=("routing",)), "routing")
    assert rows["A trial"].result == "FAIL"
    assert rows["A trial"].detail == (
        "reached the fallback A-1: none of its Prods (C-1) is up at this proxy"
    )


def test_a_prod_whose_rules_have_no_samples_fails_and_the_others_pass(prometheus):
    prometheus.load_rules(PRODS)
    prometheus.serve({"A-1": REQUESTS})
    rows = by_subject(run(outputs(), prometheus=prometheus, areas=("alerts",)), "alerts")
    assert rows["A-1"].result == "ok"
    assert rows["C-1"].result == "FAIL"
    assert 'http_requests_total{hybrid_infra_prod="C-1"} has no series now' in rows["C-1"].detail


def test_without_a_prometheus_the_alerts_are_not_checked_and_say_so():
    rows = run(outputs(), areas=("alerts",))
    assert [(r.subject, r.result) for r in rows] == [("prometheus", "ERROR")]
    assert "give --prometheus URL (or set PROMETHEUS_URL)" in rows[0].detail


def test_octavia_down_is_one_line_and_every_other_check_still_runs(
    load_balancer, edges, octavia_server
):
    shop = load_balancer()
    octavia_server.stop()
    try:
        rows = run(outputs([shop], edges), edges, areas=("dns", "nlb", "routing"))
    finally:
        octavia_server.start()
    failing = [r for r in rows if r.result != "ok"]
    assert [(r.check, r.subject, r.result) for r in failing] == [
        ("nlb targets", "shop tg/shop-443", "ERROR")
    ]
    assert failing[0].detail.startswith("Octavia did not answer")
    assert {r.check for r in rows if r.result == "ok"} == {"dns", "health check", "routing"}


def test_expired_aws_credentials_are_one_line_and_the_rest_still_runs(load_balancer, edges):
    """AWS's answer to an expired session token, as STS-issued credentials get it."""
    shop = load_balancer()
    ctx = Context(parse(outputs([shop], edges)), edges=edges.urls())
    expired = (
        b"<ErrorResponse><Error><Type>Sender</Type><Code>ExpiredToken</Code><Message>The security"
        b" token included in the request is expired</Message></Error></ErrorResponse>"
    )

    def refuse(request: Any, **_: Any) -> AWSResponse:
        return AWSResponse(request.url, 403, {}, _Raw(expired))

    from tools.verify import aws

    for client in (aws.route53(ctx), aws.elbv2(ctx)):
        client.meta.events.register("before-send", refuse)
    rows = verify(ctx, ("dns", "nlb", "routing"))
    failing = [r for r in rows if r.result != "ok"]
    assert [(r.check, r.subject) for r in failing] == [("access", "aws")]
    assert failing[0].detail.startswith("AWS refused the credentials (ExpiredToken)")
    assert "not checked: 2 dns, 1 nlb targets" in failing[0].detail
    assert len([r for r in rows if r.check == "routing" and r.result == "ok"]) == 8


class _Raw:
    """The body botocore reads from a response."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Any:
        yield self.body


def test_the_command_prints_the_table_or_json_and_exits_by_the_result(
    load_balancer, edges, tmp_path, capsys
):
    shop = load_balancer()
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(outputs([shop], edges)))
    edge_args = [a for c, url in edges.urls().items() for a in ("--edge", f"{c}={url}")]
    base = ["--stack", "verify", "--outputs", str(path), *edge_args]
    assert main([*base, "--only", "nlb", "--only", "routing"], environ={}) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[0].split() == ["check", "subject", "result", "detail"]
    assert "nlb targets  shop tg/shop-443" in out
    assert "verify: green: 10 ok, 0 FAIL, 0 ERROR" in err

    shop.octavia.remove(shop.pool, "172.17.10.12")
    assert main([*base, "--only", "nlb", "--json"], environ={}) == 1
    document = json.loads(capsys.readouterr().out)
    assert document["green"] is False
    assert [r["result"] for r in document["rows"]] == ["FAIL", "ok"]


def test_as_a_user_runs_it_a_mistake_is_one_line_and_help_runs_nothing(tmp_path):
    """In a real process, as Deployments run it after `up`."""

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tools.verify", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )

    done = run("--stack", "prod", "--outputs", str(tmp_path / "none.json"))
    assert done.returncode == 2 and done.stdout == ""
    assert (
        done.stderr == f"error: cannot read {tmp_path / 'none.json'}: No such file or directory\n"
    )
    helped = run("--help")
    assert helped.returncode == 0 and "usage: python -m tools.verify" in helped.stdout
