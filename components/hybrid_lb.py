"""An Octavia L4 load balancer with its AWS NLB twin, the member sync and weighted DNS.

The NLB sends traffic over Direct Connect to the same on-prem members as Octavia. Route53 splits
the traffic between the two (normally 90/10) and fails over when either side's health check
fails. The sync keeps the NLB's targets equal to Octavia's members on every `pulumi up`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from ipaddress import IPv4Network
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_openstack as openstack

from components import octavia_catalog
from components.credentials import OpenStackPassword
from components.dns import WeightedFailover, WeightedFailoverArgs
from components.last_up import LastOutputs
from model.aws_names import AUTONAMED_ELB_NAME, aws_name
from model.config import (
    AwsConfig,
    ConfigError,
    HealthMonitor,
    LoadBalancerSpec,
    OnPremConfig,
)
from model.management_ports import management_port
from model.nlb_mapping import (
    POOL_TRANSPORT,
    UDP_TARGET_GROUPS,
    HealthCheck,
    MappingError,
    NlbListener,
    OctaviaListener,
    map_listeners,
    without_management_ports,
)
from model.octavia import LoadBalancer as OctaviaLoadBalancer
from model.octavia import Monitor
from model.rules.load_balancers import UDP_WITHOUT_RETURN_PATH
from providers.octavia_nlb_sync import OctaviaNlbSync, octavia

DEFAULT_HEALTH_CHECK = HealthCheck("TCP", 10, 10, 3, 3)


@dataclass(frozen=True, slots=True)
class HybridLoadBalancerArgs:
    spec: LoadBalancerSpec
    aws: AwsConfig
    on_prem: OnPremConfig
    protect: bool
    config_path: str
    os_password: OpenStackPassword = field(default_factory=OpenStackPassword)
    discovered: bool = False
    """Built from an Octavia LB's tags (`model.discovery`), not from an entry of the stack file."""
    protect_dns: bool | None = None
    """Whether the DNS records are protected; None: as `protect` (False only while moving)."""
    octavia_reads: octavia_catalog.Reads | None = None
    """The run's reads of Octavia (shared, so an outage costs one timeout, not one per LB)."""
    last_up: LastOutputs | None = None
    """The stack's outputs at its last `up`: an adopted LB that Octavia cannot describe now is
    mirrored as that up read it (its `octavia` output)."""

    @property
    def lb_label(self) -> str:
        """The key that names the Octavia LB, with its id where the stack file has it."""
        if self.spec.adopt is None or self.discovered:
            return self.id_key
        return f"{self.id_key} ({self.spec.adopt.loadbalancer_id})"

    @property
    def id_key(self) -> str:
        """The key that names the Octavia LB, for errors about its id."""
        if self.discovered:
            return self.config_path
        if self.spec.adopt is not None:
            return f"{self.config_path}.adopt.loadbalancerId"
        return f"{self.config_path}.create"


@dataclass(frozen=True, slots=True)
class OctaviaSide:
    """What the rest of the component needs from Octavia, whichever mode built it."""

    loadbalancer_id: pulumi.Input[str]
    vip_address: pulumi.Input[str]
    listeners: tuple[OctaviaListener, ...]
    pool_ids: dict[str, pulumi.Input[str]]
    member_ports: frozenset[tuple[str, int]]
    declared_members: dict[str, list[dict[str, Any]]] | None = None
    """Pool key → the members the stack declares (create mode); None when Octavia is read."""
    members: tuple[pulumi.Resource, ...] = ()


class HybridLoadBalancer(pulumi.ComponentResource):
    """Octavia → NLB twin → sync → DNS, as in the architecture diagram."""

    octavia_vip: pulumi.Output[str]
    nlb_dns_name: pulumi.Output[str]
    nlb_zone_id: pulumi.Output[str]
    target_group_arns: pulumi.Output[dict[str, str]]
    fqdn: pulumi.Output[str]
    sync: OctaviaNlbSync
    described: dict[str, Any] | None
    """Adopt mode: the Octavia LB as this run read it (a recorded-catalog entry), for the
    stack's `octavia` output; None in create mode."""

    def __init__(
        self, name: str, args: HybridLoadBalancerArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("hybrid-infra:lb:HybridLoadBalancer", name, None, opts)
        self.args = args
        self.described = None
        octavia_side = self._octavia(name)
        self._member_security_group(name, octavia_side)
        nlb, target_groups, bindings = self._nlb(name, octavia_side)
        nlb_opts = args.spec.nlb
        self.sync = OctaviaNlbSync(
            f"{name}-sync",
            loadbalancer_id=octavia_side.loadbalancer_id,
            bindings=bindings,
            vpc_cidrs=[str(c) for c in args.aws.vpc_cidrs],
            owns_target_groups=nlb_opts.owns_target_groups,
            max_deregister_fraction=nlb_opts.max_deregister_fraction,
            os_cloud=args.on_prem.cloud,
            os_password=args.os_password.secret,
            aws_region=args.aws.region,
            config_key=args.id_key,
            # The sync runs after the members it binds are created or updated; members the stack
            # removes are deleted after it, and the bindings' declared members let it deregister
            # those first (see planner.members_after_up).
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[*target_groups.values(), *octavia_side.members]
            ),
        )
        dns = WeightedFailover(
            f"{name}-dns",
            WeightedFailoverArgs(
                dns=args.spec.dns,
                octavia_address=str(args.spec.dns.octavia_address or "")
                or octavia_side.vip_address,
                nlb_dns_name=nlb.dns_name,
                nlb_zone_id=nlb.zone_id,
                nlb_arn_suffix=nlb.arn_suffix,
                nlb_internal=nlb_opts.scheme == "internal",
                region=args.aws.region,
                target_group_arn_suffixes={k: tg.arn_suffix for k, tg in target_groups.items()},
                protect=args.protect if args.protect_dns is None else args.protect_dns,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.octavia_vip = pulumi.Output.from_input(octavia_side.vip_address)
        self.nlb_dns_name = nlb.dns_name
        self.nlb_zone_id = nlb.zone_id
        self.target_group_arns = pulumi.Output.all(
            **{key: tg.arn for key, tg in target_groups.items()}
        )
        self.fqdn = dns.fqdn
        self.register_outputs(
            {
                "octaviaVip": self.octavia_vip,
                "nlbDnsName": self.nlb_dns_name,
                "nlbZoneId": self.nlb_zone_id,
                "targetGroupArns": self.target_group_arns,
                "fqdn": self.fqdn,
            }
        )

    # --- Octavia ------------------------------------------------------------------------------

    def _octavia(self, name: str) -> OctaviaSide:
        spec = self.args.spec
        if spec.adopt is not None:
            return self._adopted(str(spec.adopt.loadbalancer_id))
        assert spec.create is not None
        opts = self._protected()
        lb = openstack.loadbalancer.LoadBalancer(
            f"{name}-octavia", name=name, vip_subnet_id=str(spec.create.vip_subnet_id), opts=opts
        )
        listeners: list[OctaviaListener] = []
        pool_ids: dict[str, pulumi.Input[str]] = {}
        ports: set[tuple[str, int]] = set()
        declared: dict[str, list[dict[str, Any]]] = {}
        members: list[pulumi.Resource] = []
        for li in spec.create.listeners:
            key = f"{name}-{li.name}"
            listener = openstack.loadbalancer.Listener(
                key,
                name=key,
                loadbalancer_id=lb.id,
                protocol=li.protocol,
                protocol_port=li.port,
                default_tls_container_ref=li.default_tls_container_ref,
                opts=opts,
            )
            pool = openstack.loadbalancer.Pool(
                key,
                name=key,
                listener_id=listener.id,
                protocol=li.pool.protocol,
                lb_method=li.pool.algorithm,
                opts=opts,
            )
            monitor = _monitor(li.pool.health_monitor)
            if monitor is not None:
                openstack.loadbalancer.Monitor(key, pool_id=pool.id, **asdict(monitor), opts=opts)
            # The config's member shape is the sync's declared-member shape.
            declared[key] = [m.model_dump(mode="json") for m in li.pool.members]
            for member in li.pool.members:
                resource = openstack.loadbalancer.Member(
                    f"{key}-{member.address}-{member.port}",
                    pool_id=pool.id,
                    address=str(member.address),
                    protocol_port=member.port,
                    weight=member.weight,
                    admin_state_up=member.admin_state_up,
                    opts=opts,
                )
                members.append(resource)
                ports.add((POOL_TRANSPORT[li.pool.protocol], member.port))
            pool_ids[key] = pool.id
            listeners.append(
                OctaviaListener(
                    name=li.name,
                    protocol=li.protocol,
                    port=li.port,
                    pool_key=key,
                    pool_protocol=li.pool.protocol,
                    monitor=monitor,
                    member_ports=tuple(m.port for m in li.pool.members),
                )
            )
        return OctaviaSide(
            lb.id,
            lb.vip_address,
            tuple(listeners),
            pool_ids,
            frozenset(ports),
            declared,
            tuple(members),
        )

    def _adopted(self, loadbalancer_id: str) -> OctaviaSide:
        """Adopt mode: the LB exists in Octavia; read it and mirror what it has now."""
        where = self.args.id_key
        try:
            reads = self.args.octavia_reads or octavia_catalog.Reads(
                self.args.on_prem.cloud, self.args.os_password.plain
            )
            lb = reads.describe(loadbalancer_id)
        except octavia.OctaviaNotFound as error:
            if self.args.discovered:  # listed a moment ago: deleted since
                raise pulumi.RunError(
                    f"{where}: {error}: the tagged LB went away while the program ran; "
                    "run again (its twin is then removed like any untagged LB's)"
                ) from error
            raise ConfigError([f"{where}: {error}"], f"Pulumi.{pulumi.get_stack()}.yaml") from error
        except octavia.OctaviaUnavailable as error:
            lb = self._as_last_up(loadbalancer_id, where, error)
        self.described = octavia_catalog.entry_of(lb)
        pools = {p.id: p for p in lb.pools}
        listeners = []
        for li in lb.listeners:
            pool = pools.get(li.default_pool_id or "")
            if pool is None:
                pulumi.log.warn(f"{where}: listener {li.name} has no default pool; not mirrored")
                continue
            listeners.append(
                OctaviaListener(
                    name=li.name,
                    protocol=li.protocol,
                    port=li.protocol_port,
                    pool_key=pool.id,
                    pool_protocol=pool.protocol,
                    monitor=pool.monitor,
                    member_ports=tuple(pool.member_ports),
                )
            )
        ports = {
            (POOL_TRANSPORT.get(p.protocol, "TCP"), port)
            for p in lb.pools
            for port in p.member_ports
        }
        pool_ids: dict[str, pulumi.Input[str]] = {li.pool_key: li.pool_key for li in listeners}
        return OctaviaSide(lb.id, lb.vip_address, tuple(listeners), pool_ids, frozenset(ports))

    def _as_last_up(
        self, loadbalancer_id: str, where: str, error: octavia.OctaviaUnavailable
    ) -> OctaviaLoadBalancer:
        """Octavia down: the twin stays as the last `up` built it, so the rest of the stack (a
        DNS drain away from Octavia, say) still applies. A first run has nothing to keep."""
        recorded = self.args.last_up.get("octavia") if self.args.last_up else None
        entry = recorded.get(loadbalancer_id) if isinstance(recorded, Mapping) else None
        if entry is None:
            raise pulumi.RunError(
                f"{where}: Octavia did not answer, and no earlier up read this LB, so its twin "
                f"cannot mirror it; nothing was changed. Run again once Octavia answers: {error}"
            ) from error
        pulumi.log.warn(
            f"{where}: Octavia did not answer ({error}); the twin mirrors the LB as the last up "
            "read it, and follows Octavia again once it answers"
        )
        return octavia_catalog.from_entry(entry)

    def _member_security_group(self, name: str, side: OctaviaSide) -> None:
        """Members take traffic from the Octavia VIP network and the NLB's VPC, nothing else.

        Service teams attach this group to their member ports. The NLB reaches members from its
        private addresses in the VPC (client IPs only when preserveClientIp is on, which then
        opens the service ports, never management ports).
        """
        group = openstack.networking.SecGroup(
            f"{name}-members",
            description=f"{name}: Octavia VIP network and NLB subnets to member ports",
            opts=pulumi.ResourceOptions(parent=self),
        )
        private = [self.args.on_prem.vip_network_cidr, *self.args.aws.vpc_cidrs]
        clients = [IPv4Network("0.0.0.0/0")] if self.args.spec.nlb.preserve_client_ip else []
        for transport, port in sorted(side.member_ports):
            for cidr in private if management_port(port) else [*private, *clients]:
                openstack.networking.SecGroupRule(
                    f"{name}-members-{transport.lower()}-{port}-{cidr}".replace("/", "_"),
                    security_group_id=group.id,
                    direction="ingress",
                    ethertype="IPv4",
                    protocol=transport.lower(),
                    port_range_min=port,
                    port_range_max=port,
                    remote_ip_prefix=str(cidr),
                    opts=pulumi.ResourceOptions(parent=group),
                )

    # --- NLB ----------------------------------------------------------------------------------

    def _nlb(
        self, name: str, side: OctaviaSide
    ) -> tuple[aws.lb.LoadBalancer, dict[str, aws.lb.TargetGroup], list[pulumi.Input[dict]]]:
        args = self.args
        mirrored, refused = without_management_ports(side.listeners)
        for reason in refused:
            pulumi.log.warn(f"{args.lb_label}: {reason}; not mirrored")
        try:
            nlb_listeners = map_listeners(mirrored)
        except MappingError as error:
            raise pulumi.RunError(f"{args.config_path}: {error}") from error
        carries_udp = [li.name for li in nlb_listeners if li.protocol in UDP_TARGET_GROUPS]
        if carries_udp and not args.spec.nlb.udp_replies_over_dx:
            raise pulumi.RunError(
                f"{args.config_path}.nlb.udpRepliesOverDx: listeners {', '.join(carries_udp)}: "
                f"{UDP_WITHOUT_RETURN_PATH}"
            )
        security_group = self._nlb_security_group(name, nlb_listeners, side)
        nlb = aws.lb.LoadBalancer(
            aws_name(f"{name}-nlb", AUTONAMED_ELB_NAME),
            load_balancer_type="network",
            internal=args.spec.nlb.scheme == "internal",
            subnets=list(args.aws.subnet_ids),
            enable_cross_zone_load_balancing=True,
            security_groups=[security_group.id],
            opts=self._protected(),
        )
        target_groups: dict[str, aws.lb.TargetGroup] = {}
        bindings: list[pulumi.Input[dict]] = []
        for listener in nlb_listeners:
            key = f"{name}-{listener.name}"
            target_group = self._target_group(aws_name(key, AUTONAMED_ELB_NAME), listener)
            aws.lb.Listener(
                key,
                load_balancer_arn=nlb.arn,
                port=listener.port,
                protocol=listener.protocol,
                default_actions=[{"type": "forward", "target_group_arn": target_group.arn}],
                opts=pulumi.ResourceOptions(parent=self),
            )
            target_groups[listener.name] = target_group
            bindings.extend(
                {
                    "pool_id": side.pool_ids[pool],
                    "target_group_arn": target_group.arn,
                    **(
                        {"members": side.declared_members[pool]}
                        if side.declared_members is not None
                        else {}
                    ),
                }
                for pool in listener.pool_keys
            )
        return nlb, target_groups, bindings

    def _target_group(self, key: str, listener: NlbListener) -> aws.lb.TargetGroup:
        options = self.args.spec.nlb
        check = listener.health_check or DEFAULT_HEALTH_CHECK
        return aws.lb.TargetGroup(
            key,
            port=listener.port,
            protocol=listener.protocol,
            target_type="ip",
            vpc_id=self.args.aws.vpc_id,
            deregistration_delay=options.deregistration_delay,
            # Always on, and not settable, for UDP and TCP_UDP groups (AWS refuses "false").
            preserve_client_ip=None
            if listener.protocol in UDP_TARGET_GROUPS
            else str(options.preserve_client_ip).lower(),
            proxy_protocol_v2=listener.proxy_protocol_v2,
            health_check=aws.lb.TargetGroupHealthCheckArgs(
                enabled=True,
                protocol=check.protocol,
                port="traffic-port",
                interval=check.interval,
                timeout=check.timeout,
                healthy_threshold=check.healthy_threshold,
                unhealthy_threshold=check.unhealthy_threshold,
                path=check.path,
                matcher=check.matcher,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _nlb_security_group(
        self, name: str, listeners: list[NlbListener], side: OctaviaSide
    ) -> aws.ec2.SecurityGroup:
        """Clients reach the listener ports; the NLB reaches members only over Direct Connect."""
        args = self.args
        public = args.spec.nlb.scheme == "internet-facing"
        clients = (
            ["0.0.0.0/0"]
            if public
            else [str(c) for c in (*args.aws.vpc_cidrs, *args.on_prem.dx_cidrs)]
        )
        ingress = [
            aws.ec2.SecurityGroupIngressArgs(
                protocol=t.lower(), from_port=li.port, to_port=li.port, cidr_blocks=clients
            )
            for li in listeners
            for t in _transports(li.protocol)
        ]
        egress = [
            aws.ec2.SecurityGroupEgressArgs(
                protocol=transport.lower(),
                from_port=port,
                to_port=port,
                cidr_blocks=[str(c) for c in args.on_prem.dx_cidrs],
            )
            for transport, port in sorted(side.member_ports)
            if not management_port(port)
        ]
        return aws.ec2.SecurityGroup(
            f"{name}-nlb",
            description=f"{name} NLB: listener ports in, member ports out over Direct Connect",
            vpc_id=args.aws.vpc_id,
            ingress=ingress,
            egress=egress,
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _protected(self) -> pulumi.ResourceOptions:
        """Resources that carry traffic are protected in stacks that ask for it."""
        return pulumi.ResourceOptions(parent=self, protect=self.args.protect)


def _transports(protocol: str) -> tuple[str, ...]:
    return ("TCP", "UDP") if protocol == "TCP_UDP" else (protocol,)


def _monitor(monitor: HealthMonitor | None) -> Monitor | None:
    """The config's monitor in the shape Octavia reads return (the same field names)."""
    return None if monitor is None else Monitor(**monitor.model_dump())
