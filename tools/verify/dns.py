"""DNS: each name answers on both weighted sides, and Route53 finds each side healthy.

Per load balancer and side (`octavia`, `nlb`), Route53's own answers:

- the weighted record with that set identifier: the Octavia side an A record to the VIP (or its
  floating IP), the NLB side an alias to this stack's NLB, each at the weight the stack set and
  guarded by a health check (ListResourceRecordSets). Route53 is asked rather than a resolver:
  a weighted name answers one side per query, at random, and only Route53 shows both;
- that health check's status from every checker (GetHealthCheckStatus), failing regions named.
  A CALCULATED check (an internal NLB's healthy-host alarms) has no checkers of its own: Route53
  counts its children, so verify does too (GetHealthCheck, then each child's status).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

from tools.verify import aws
from tools.verify.context import Context
from tools.verify.outputs import LoadBalancer
from tools.verify.report import Row, error, fail, ok, skip
from tools.verify.runner import Probe

RECORD = "dns"
HEALTH = "health check"
SIDES = ("octavia", "nlb")
HEALTHY_SHARE = 0.18
"""Route53 counts an endpoint healthy while more than 18% of its checkers find it healthy
(Route53 docs, "How Amazon Route 53 determines whether a health check is healthy")."""


def probes(ctx: Context) -> list[Probe]:
    return [
        Probe(RECORD, f"{lb.fqdn} {side}", partial(check_side, ctx, lb, side))
        for lb in ctx.outputs.load_balancers
        if lb.dns is not None
        for side in SIDES
    ]


# --- judging (pure) -------------------------------------------------------------------------


def judge_record(lb: LoadBalancer, side: str, records: Sequence[Mapping[str, Any]]) -> Row:
    """The side's weighted record against what the stack set."""
    assert lb.dns is not None
    subject = f"{lb.fqdn} {side}"
    record = _record_of(lb, side, records)
    if not record:
        return fail(
            RECORD,
            subject,
            f"no weighted A record {lb.fqdn} with set identifier {side!r} in zone "
            f"{lb.dns.zone}: this side never answers; run `pulumi up`",
        )
    problems = []
    weight = int(record.get("Weight", -1))
    wanted_weight = getattr(lb.dns.weights, side)
    if weight != wanted_weight:
        problems.append(f"weight {weight}, the stack sets {wanted_weight}")
    if side == "octavia":
        values = sorted(str(v.get("Value")) for v in record.get("ResourceRecords") or ())
        target = ", ".join(values) or "nothing"
        if values != [lb.dns.octavia_address]:
            problems.append(f"answers {target}, not {lb.dns.octavia_address}")
    else:
        alias = str((record.get("AliasTarget") or {}).get("DNSName") or "")
        target = f"alias {_host(alias) or 'none'}"
        if _host(alias) != _host(lb.nlb_dns_name):
            problems.append(f"aliases {_host(alias) or 'nothing'}, not {lb.nlb_dns_name}")
    if not record.get("HealthCheckId"):
        problems.append("no health check guards it, so Route53 never fails it over")
    if problems:
        return fail(RECORD, subject, "; ".join(problems))
    drained = " (drained)" if weight == 0 else ""
    return ok(RECORD, subject, f"{target}, weight {weight}{drained}")


def judge_observations(subject: str, observations: Sequence[Mapping[str, Any]]) -> Row:
    """One endpoint check, from its checkers' reports: green only when every checker region
    passes. A region that fails is named even while Route53 still counts the endpoint healthy
    (over 18% pass): a checker range a firewall does not admit is a real fault."""
    if not observations:
        return error(HEALTH, subject, "Route53 reports no checker observation for it yet")
    failing: dict[str, str] = {}
    passing = 0
    for seen in observations:
        status = str((seen.get("StatusReport") or {}).get("Status") or "no status")
        if status.startswith("Success"):
            passing += 1
        else:
            failing.setdefault(str(seen.get("Region", "?")), status)
    regions = len({str(seen.get("Region", "?")) for seen in observations})
    if not failing:
        return ok(HEALTH, subject, f"healthy: {passing} checkers in {regions} region(s)")
    counted = passing > HEALTHY_SHARE * len(observations)
    verdict = (
        "Route53 still counts it healthy (over 18% pass)"
        if counted
        else "Route53 counts it unhealthy and answers with the other side"
    )
    named = "; ".join(f"{region}: {status}" for region, status in sorted(failing.items()))
    return fail(
        HEALTH,
        subject,
        f"{len(observations) - passing} of {len(observations)} checkers fail, {verdict}: {named}",
    )


def judge_calculated(subject: str, threshold: int, children: Sequence[Row]) -> Row:
    """A CALCULATED check is healthy while at least `threshold` children are."""
    healthy = [c for c in children if c.result == "ok"]
    if any(c.result == "ERROR" for c in children) and len(healthy) < threshold:
        return error(HEALTH, subject, "; ".join(c.detail for c in children if c.result == "ERROR"))
    if len(healthy) >= threshold and len(healthy) == len(children):
        return ok(HEALTH, subject, f"healthy: all {len(children)} child checks pass")
    sick = "; ".join(f"{c.subject}: {c.detail}" for c in children if c.result != "ok")
    return fail(
        HEALTH,
        subject,
        f"{len(healthy)} of {len(children)} child checks healthy (needs {threshold}): {sick}",
    )


def drained(row: Row) -> Row:
    """A side drained on purpose (weight 0, `dns.drain`) takes no traffic: its check failing is
    the game day, not a fault. Said, not failed."""
    if row.result == "ok":
        return row
    return skip(HEALTH, row.subject, f"drained (weight 0), so not failed: {row.detail}")


def _record_of(
    lb: LoadBalancer, side: str, records: Sequence[Mapping[str, Any]]
) -> Mapping[str, Any]:
    """The side's weighted A record of the name, or an empty mapping."""
    name = _absolute(lb.fqdn)
    for record in records:
        if (
            _absolute(str(record.get("Name", ""))) == name
            and record.get("Type") == "A"
            and record.get("SetIdentifier") == side
        ):
            return record
    return {}


def _absolute(name: str) -> str:
    return name.rstrip(".").lower() + "."


def _host(name: str) -> str:
    """An alias target as Route53 stores it (`dualstack.`, a trailing dot) or as the NLB
    reports it, reduced to one form."""
    return name.rstrip(".").lower().removeprefix("dualstack.")


# --- reading --------------------------------------------------------------------------------


def check_side(ctx: Context, lb: LoadBalancer, side: str) -> list[Row]:
    assert lb.dns is not None
    records = ctx.shared.get(("records", lb.fqdn), partial(_records, ctx, lb))
    if records is None:
        return [fail(RECORD, f"{lb.fqdn} {side}", f"no public hosted zone {lb.dns.zone}")]
    row = judge_record(lb, side, records)
    check_id = _record_of(lb, side, records).get("HealthCheckId")
    if not check_id:
        return [row]
    checked = health(ctx, f"{lb.fqdn} {side}", str(check_id))
    return [row, drained(checked) if getattr(lb.dns.weights, side) == 0 else checked]


def health(ctx: Context, subject: str, check_id: str) -> Row:
    client = aws.route53(ctx)
    try:
        config = ctx.meter.call(
            "route53 GetHealthCheck", client.get_health_check, HealthCheckId=check_id
        )["HealthCheck"]["HealthCheckConfig"]
        if config.get("Type") == "CALCULATED":
            children = [
                health(ctx, f"{subject} child {child}", str(child))
                for child in config.get("ChildHealthChecks") or ()
            ]
            return judge_calculated(subject, int(config.get("HealthThreshold", 0)), children)
        status = ctx.meter.call(
            "route53 GetHealthCheckStatus", client.get_health_check_status, HealthCheckId=check_id
        )
    except aws.ERRORS as failure:
        raise aws.unchecked(failure, f"health check {check_id}") from failure
    return judge_observations(subject, status.get("HealthCheckObservations") or ())


def _records(ctx: Context, lb: LoadBalancer) -> list[dict[str, Any]] | None:
    """The A records of the name (both weighted sides) from its hosted zone; None without
    the zone."""
    assert lb.dns is not None
    zone = lb.dns.zone
    client = aws.route53(ctx)
    zone_id = ctx.shared.get(("zone", zone), partial(_zone_id, ctx, zone))
    if zone_id is None:
        return None
    try:
        answer = ctx.meter.call(
            "route53 ListResourceRecordSets",
            client.list_resource_record_sets,
            HostedZoneId=zone_id,
            StartRecordName=lb.fqdn,
            StartRecordType="A",
            MaxItems="10",
        )
    except aws.ERRORS as failure:
        raise aws.unchecked(failure, f"records of {lb.fqdn}") from failure
    return list(answer.get("ResourceRecordSets") or ())


def _zone_id(ctx: Context, zone: str) -> str | None:
    """The public hosted zone named `zone`, as the program looks it up (`get_zone`)."""
    try:
        answer = ctx.meter.call(
            "route53 ListHostedZonesByName",
            aws.route53(ctx).list_hosted_zones_by_name,
            DNSName=zone,
            MaxItems="10",
        )
    except aws.ERRORS as failure:
        raise aws.unchecked(failure, f"hosted zone {zone}") from failure
    for found in answer.get("HostedZones") or ():
        private = (found.get("Config") or {}).get("PrivateZone", False)
        if _absolute(found["Name"]) == _absolute(zone) and not private:
            return str(found["Id"]).rpartition("/")[2]
    return None
