"""Weighted, health-checked Route53 records: Octavia and its NLB twin share one name.

Route53 answers with a record in proportion to its weight among the *healthy* records, so the
weights set the normal split (90/10) and the health checks do the failover. When every record is
unhealthy, Route53 fails open and answers as if all were healthy (by weight).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from model.aws_names import HEALTH_CHECK_REFERENCE, aws_name
from model.config import Dns, Weights


def effective_weights(dns: Dns) -> Weights:
    """`drain` takes one side out for a game day without touching the configured weights."""
    if dns.drain == "octavia":
        return Weights(octavia=0, nlb=max(dns.weights.nlb, 1))
    if dns.drain == "nlb":
        return Weights(octavia=max(dns.weights.octavia, 1), nlb=0)
    return dns.weights


@dataclass(frozen=True, slots=True)
class WeightedFailoverArgs:
    dns: Dns
    octavia_address: pulumi.Input[str]
    nlb_dns_name: pulumi.Input[str]
    nlb_zone_id: pulumi.Input[str]
    nlb_arn_suffix: pulumi.Input[str]
    nlb_internal: bool
    region: str
    target_group_arn_suffixes: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    """Listener name → its target group's ARN suffix: NLB metrics are per target group."""
    protect: bool = False
    """Protect the two records: removing them takes the name away from every client."""


class WeightedFailover(pulumi.ComponentResource):
    """Two weighted records for one name, each guarded by its own Route53 health check."""

    fqdn: pulumi.Output[str]

    def __init__(
        self, name: str, args: WeightedFailoverArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("hybrid-infra:dns:WeightedFailover", name, None, opts)
        dns = args.dns
        child = pulumi.ResourceOptions(parent=self)
        zone = aws.route53.get_zone_output(
            name=dns.zone, private_zone=False, opts=pulumi.InvokeOptions(parent=self)
        )
        weights = effective_weights(dns)

        octavia_check = self._octavia_health_check(name, args, child)
        nlb_check = self._nlb_health_check(name, args, child)
        # Only the records: the checks and alarms behind them may be replaced at will (a new
        # one is made before the record moves to it), the records cannot be without an outage.
        record = pulumi.ResourceOptions(parent=self, protect=args.protect)

        aws.route53.Record(
            f"{name}-octavia",
            zone_id=zone.zone_id,
            name=dns.fqdn,
            type="A",
            ttl=dns.ttl,
            records=[args.octavia_address],
            set_identifier="octavia",
            weighted_routing_policies=[{"weight": weights.octavia}],
            health_check_id=octavia_check.id,
            opts=record,
        )
        aws.route53.Record(
            f"{name}-nlb",
            zone_id=zone.zone_id,
            name=dns.fqdn,
            type="A",
            aliases=[
                {
                    "name": args.nlb_dns_name,
                    "zone_id": args.nlb_zone_id,
                    "evaluate_target_health": True,
                }
            ],
            set_identifier="nlb",
            weighted_routing_policies=[{"weight": weights.nlb}],
            health_check_id=nlb_check.id,
            opts=record,
        )
        self.fqdn = pulumi.Output.from_input(dns.fqdn)
        self.register_outputs({"fqdn": self.fqdn})

    def _octavia_health_check(
        self, name: str, args: WeightedFailoverArgs, opts: pulumi.ResourceOptions
    ) -> aws.route53.HealthCheck:
        dns = args.dns
        if dns.octavia_vip == "private" and dns.octavia_alarm is not None:
            # Route53's checkers live on the internet and cannot reach a VIP that only Direct
            # Connect reaches; an alarm fed from inside the VPC stands in for them.
            return aws.route53.HealthCheck(
                f"{name}-octavia",
                type="CLOUDWATCH_METRIC",
                cloudwatch_alarm_name=dns.octavia_alarm.name,
                cloudwatch_alarm_region=dns.octavia_alarm.region or args.region,
                insufficient_data_health_status="LastKnownStatus",
                reference_name=aws_name(f"{name}-octavia", HEALTH_CHECK_REFERENCE),
                opts=opts,
            )
        return self._endpoint_check(f"{name}-octavia", dns, opts, ip_address=args.octavia_address)

    def _nlb_health_check(
        self, name: str, args: WeightedFailoverArgs, opts: pulumi.ResourceOptions
    ) -> aws.route53.HealthCheck:
        if args.nlb_internal:
            return self._healthy_hosts_check(name, args, opts)
        return self._endpoint_check(f"{name}-nlb", args.dns, opts, fqdn=args.nlb_dns_name)

    @staticmethod
    def _healthy_hosts_check(
        name: str, args: WeightedFailoverArgs, opts: pulumi.ResourceOptions
    ) -> aws.route53.HealthCheck:
        """An internal NLB is out of the checkers' reach: its healthy-host metric stands in.

        NLB publishes HealthyHostCount per target group only (dimensions LoadBalancer and
        TargetGroup); an alarm on the LoadBalancer dimension alone never gets data. So one alarm
        per target group, each behind a CLOUDWATCH_METRIC check, and a CALCULATED check that is
        healthy only while every group has a healthy host (a port with none is an outage). A twin
        with no target group (every listener left off as a management port) is never healthy:
        Route53 calls a threshold of 0 healthy, one above the children's count unhealthy.
        """
        checks = []
        for listener, suffix in sorted(args.target_group_arn_suffixes.items()):
            key = f"{name}-nlb-{listener}"
            alarm = aws.cloudwatch.MetricAlarm(
                f"{key}-healthy-hosts",
                namespace="AWS/NetworkELB",
                metric_name="HealthyHostCount",
                dimensions={"LoadBalancer": args.nlb_arn_suffix, "TargetGroup": suffix},
                statistic="Minimum",
                period=60,
                evaluation_periods=2,
                threshold=1,
                comparison_operator="LessThanThreshold",
                treat_missing_data="breaching",
                opts=opts,
            )
            checks.append(
                aws.route53.HealthCheck(
                    key if len(args.target_group_arn_suffixes) > 1 else f"{name}-nlb",
                    type="CLOUDWATCH_METRIC",
                    cloudwatch_alarm_name=alarm.name,
                    cloudwatch_alarm_region=args.region,
                    insufficient_data_health_status="LastKnownStatus",
                    opts=opts,
                )
            )
        if len(checks) == 1:
            return checks[0]
        return aws.route53.HealthCheck(
            f"{name}-nlb",
            type="CALCULATED",
            child_healthchecks=[c.id for c in checks],
            child_health_threshold=max(len(checks), 1),
            opts=opts,
        )

    @staticmethod
    def _endpoint_check(
        name: str,
        dns: Dns,
        opts: pulumi.ResourceOptions,
        ip_address: pulumi.Input[str] | None = None,
        fqdn: pulumi.Input[str] | None = None,
    ) -> aws.route53.HealthCheck:
        """Route53's own checkers probe the endpoint from several regions."""
        check = dns.health_check
        return aws.route53.HealthCheck(
            name,
            type=check.protocol,
            ip_address=ip_address,
            fqdn=fqdn,
            port=check.port,
            resource_path=check.path if check.protocol != "TCP" else None,
            request_interval=check.interval,
            failure_threshold=check.failure_threshold,
            opts=opts,
        )
