"""The typed stack configuration, validated whole before any resource exists.

Every `hybrid-infra:*` key of a stack is parsed into frozen models. Problems are collected across
all keys and raised together as one `ConfigError`, each line naming its key path
(`hybrid-infra:loadBalancers[1].dns.weights.nlb: ...`), so one run of `pulumi preview` shows
everything wrong with a stack file and registers nothing.
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from ipaddress import IPv4Address, IPv4Network, ip_network
from types import UnionType
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin
from uuid import UUID

from cryptography import x509
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    SecretStr,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from model.stackfile import PROJECT

Name = Annotated[str, Field(pattern=r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")]
Monitoring = Literal["prometheus-operator", "none"]
"""What watches a cluster's workloads: `prometheus-operator` means its CRDs
(`monitoring.coreos.com/v1` PrometheusRule and PodMonitor) are installed and a Prometheus
selects them. The program does not install them: the monitoring stack is the cluster's own.
A cluster that hosts Prods must say `prometheus-operator` (model.rules)."""
ProdName = Annotated[str, Field(pattern=r"^[A-Za-z0-9]([A-Za-z0-9-]{0,30}[A-Za-z0-9])?$")]
Port = Annotated[int, Field(ge=1, le=65535)]
KubeVersion = Annotated[str, Field(pattern=r"^1\.\d{2}$")]
RoleArn = Annotated[str, Field(pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/[A-Za-z0-9+=,.@_/-]+$")]
DnsName = Annotated[str, Field(pattern=r"^([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,}$")]


class ConfigError(ValueError):
    """A stack file is wrong; the message lists every problem with its key path. The program
    hands it to the engine as a `pulumi.RunError` (`__main__.py`), a message with no traceback."""

    def __init__(self, problems: Iterable[str], source: str | None = None) -> None:
        self.problems = sorted(set(problems))
        self.source = source
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            f"{len(self.problems)} problem(s) in the stack configuration; nothing was changed. "
            f"Fix them in {source or 'the stack file'} and run again:\n{lines}"
        )


class Model(BaseModel):
    """Config models: immutable, camelCase in YAML, and typos are errors."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True
    )


# --- platform -------------------------------------------------------------------------------


class AwsConfig(Model):
    """The AWS side: the VPC that Direct Connect joins to the on-prem networks."""

    region: Annotated[str, Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")]
    vpc_id: Annotated[str, Field(pattern=r"^vpc-[0-9a-f]{8,17}$")]
    vpc_cidrs: Annotated[tuple[IPv4Network, ...], Field(min_length=1)]
    subnet_ids: Annotated[
        tuple[Annotated[str, Field(pattern=r"^subnet-[0-9a-f]{8,17}$")], ...], Field(min_length=2)
    ]
    cluster_admin_roles: tuple[RoleArn, ...] = ()
    """IAM roles that deploy (the update identities of Deployments and the CI workflow,
    operators): EKS clusters authenticate by access entries only, so these get cluster admin on
    every EKS cluster."""
    cluster_viewer_roles: tuple[RoleArn, ...] = ()
    """IAM roles that only preview, refresh and verify (the reader identities,
    docs/delivery.md): `AmazonEKSViewPolicy` on every EKS cluster, never admin."""


class OnPremConfig(Model):
    """The OpenStack side, and what of it Direct Connect makes reachable from the VPC."""

    cloud: Annotated[str, Field(min_length=1)]
    dx_cidrs: Annotated[tuple[IPv4Network, ...], Field(min_length=1)]
    vip_network_cidr: IPv4Network
    external_network_id: UUID | None = None


# --- load balancers -------------------------------------------------------------------------


class MemberSpec(Model):
    address: IPv4Address
    port: Port
    weight: Annotated[int, Field(ge=0, le=256)] = 1
    admin_state_up: bool = True


class HealthMonitor(Model):
    type: Literal["TCP", "HTTP", "HTTPS", "PING", "UDP-CONNECT"] = "TCP"
    delay: Annotated[int, Field(ge=1, le=300)] = 10
    timeout: Annotated[int, Field(ge=1, le=120)] = 5
    max_retries: Annotated[int, Field(ge=1, le=10)] = 3
    max_retries_down: Annotated[int, Field(ge=1, le=10)] = 3
    url_path: Annotated[str, Field(pattern=r"^/")] | None = None
    expected_codes: Annotated[str, Field(pattern=r"^\d{3}([-,]\d{3})*$")] | None = None

    @model_validator(mode="after")
    def _timeout_below_delay(self) -> HealthMonitor:
        if self.timeout > self.delay:
            raise ValueError("timeout must not exceed delay")
        return self


class PoolSpec(Model):
    protocol: Literal["TCP", "UDP", "PROXY", "PROXYV2", "HTTP", "HTTPS"] = "TCP"
    algorithm: Literal["ROUND_ROBIN", "LEAST_CONNECTIONS", "SOURCE_IP"] = "ROUND_ROBIN"
    members: tuple[MemberSpec, ...] = ()
    health_monitor: HealthMonitor | None = None


class ListenerSpec(Model):
    name: Name
    protocol: Literal["TCP", "UDP", "HTTP", "HTTPS", "TERMINATED_HTTPS"]
    port: Port
    pool: PoolSpec
    default_tls_container_ref: Annotated[str, Field(min_length=1)] | None = None
    """Barbican container of the certificate a TERMINATED_HTTPS listener presents."""


class CreateSpec(Model):
    """An Octavia LB this program declares."""

    vip_subnet_id: UUID
    listeners: Annotated[tuple[ListenerSpec, ...], Field(min_length=1)]


class AdoptSpec(Model):
    """An Octavia LB that exists already; its listeners and pools are read at program time."""

    loadbalancer_id: UUID


class NlbOptions(Model):
    scheme: Literal["internet-facing", "internal"] = "internal"
    """Internal (the VPC and Direct Connect) unless the stack file says internet-facing."""
    deregistration_delay: Annotated[int, Field(ge=0, le=3600)] = 120
    preserve_client_ip: bool = False
    owns_target_groups: bool = False
    max_deregister_fraction: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5
    udp_replies_over_dx: bool = False
    """The on-prem network routes replies to client addresses back over Direct Connect.

    NLB always preserves the client IP towards UDP and TCP_UDP target groups, so a member
    answers the client's own address; without this routing the reply bypasses the NLB and is
    dropped. Only with it set does the twin carry UDP.
    """


class Weights(Model):
    """Route53 weights; 90/10 keeps the NLB warm while Octavia carries the bulk."""

    octavia: Annotated[int, Field(ge=0, le=255)] = 90
    nlb: Annotated[int, Field(ge=0, le=255)] = 10

    @model_validator(mode="after")
    def _not_both_zero(self) -> Weights:
        if self.octavia == 0 and self.nlb == 0:
            raise ValueError("octavia and nlb weights must not both be 0; use drain instead")
        return self


class DnsHealthCheck(Model):
    protocol: Literal["TCP", "HTTP", "HTTPS"] = "TCP"
    port: Port
    path: Annotated[str, Field(pattern=r"^/")] | None = None
    interval: Literal[10, 30] = 30
    failure_threshold: Annotated[int, Field(ge=1, le=10)] = 3


class OctaviaAlarm(Model):
    """A CloudWatch alarm that watches a private VIP from inside the VPC."""

    name: Annotated[str, Field(min_length=1)]
    region: Annotated[str, Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")] | None = None


class Dns(Model):
    zone: DnsName
    record: Annotated[str, Field(pattern=r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")]
    ttl: Annotated[int, Field(ge=10, le=86400)] = 60
    weights: Weights = Weights()
    drain: Literal["octavia", "nlb"] | None = None
    health_check: DnsHealthCheck
    octavia_vip: Literal["public", "private"] = "public"
    octavia_address: IPv4Address | None = None
    octavia_alarm: OctaviaAlarm | None = None

    @property
    def fqdn(self) -> str:
        return f"{self.record}.{self.zone}"

    @model_validator(mode="after")
    def _private_vip_needs_alarm(self) -> Dns:
        if self.octavia_vip == "private" and self.octavia_alarm is None:
            raise ValueError(
                "octaviaVip is private, so Route53's checkers cannot reach it: "
                "set octaviaAlarm (a CloudWatch-alarm health check)"
            )
        return self


class LoadBalancerSpec(Model):
    """One service: an Octavia LB, its NLB twin, the member sync and weighted DNS."""

    name: Name
    create: CreateSpec | None = None
    adopt: AdoptSpec | None = None
    nlb: NlbOptions = NlbOptions()
    dns: Dns

    @model_validator(mode="after")
    def _create_xor_adopt(self) -> LoadBalancerSpec:
        if (self.create is None) == (self.adopt is None):
            raise ValueError("give exactly one of create, adopt")
        return self


class DiscoveryDefaults(Model):
    """What a tagged LB gets where its own tags say nothing (see model/discovery.py)."""

    zone: DnsName
    weights: Weights = Weights()
    ttl: Annotated[int, Field(ge=10, le=86400)] = 60
    health_check: Literal["TCP", "HTTP", "HTTPS"] = "TCP"
    check_port: Port | None = None
    """The port Route53 checks when the LB has no `hybrid-infra/check-port` tag."""
    nlb: NlbOptions = NlbOptions()


class Discovery(Model):
    """Octavia LBs that carry `tag` get a twin without an entry in `loadBalancers`."""

    tag: Annotated[str, Field(min_length=1, max_length=255)] = "hybrid-infra/twin"
    defaults: DiscoveryDefaults
    allow_moves: tuple[UUID, ...] = ()
    """Tagged LBs whose DNS name may move in this `up` although the stack protects its records
    (a record or zone tag change replaces both records); without it the move waits."""
    allow_public: tuple[UUID, ...] = ()
    """Tagged LBs whose twin may be internet-facing (`hybrid-infra/scheme=internet-facing`);
    every other twin is internal."""
    allow_zones: tuple[DnsName, ...] = ()
    """Zones a `hybrid-infra/zone` tag may name besides `defaults.zone`."""

    @property
    def zones(self) -> tuple[str, ...]:
        return (self.defaults.zone, *self.allow_zones)


# --- clusters -------------------------------------------------------------------------------


class OnPremClusterSpec(Model):
    """A Magnum cluster on the private cloud; `twin: eks` brings an EKS cluster with it."""

    kind: Literal["onprem"]
    kubernetes_version: KubeVersion
    template_image: Annotated[str, Field(min_length=1)]
    flavor: Annotated[str, Field(min_length=1)]
    master_flavor: Annotated[str, Field(min_length=1)]
    master_count: Literal[1, 3, 5] = 3
    node_count: Annotated[int, Field(ge=1, le=500)] = 3
    keypair: Annotated[str, Field(min_length=1)]
    twin: Literal["eks"] | None = None
    capacity: Annotated[int, Field(ge=0)] = 0
    drained: bool = False
    monitoring: Monitoring = "none"


class NodeGroup(Model):
    name: Name
    instance_types: Annotated[tuple[str, ...], Field(min_length=1)]
    min_size: Annotated[int, Field(ge=0)] = 1
    desired_size: Annotated[int, Field(ge=0)] = 2
    max_size: Annotated[int, Field(ge=1)] = 4

    @model_validator(mode="after")
    def _sizes_ordered(self) -> NodeGroup:
        if not self.min_size <= self.desired_size <= self.max_size:
            raise ValueError("need minSize <= desiredSize <= maxSize")
        return self


class EksClusterSpec(Model):
    kind: Literal["eks"]
    kubernetes_version: KubeVersion
    node_groups: Annotated[tuple[NodeGroup, ...], Field(min_length=1)] = (
        NodeGroup(name="default", instance_types=("m6i.large",)),
    )
    capacity: Annotated[int, Field(ge=0)] = 0
    drained: bool = False
    monitoring: Monitoring = "none"


class GkeNodePool(Model):
    """The pool of the running version; a new version means a new pool, then drain the old."""

    version: Annotated[str, Field(pattern=r"^1\.\d{2}(\.\d+(-gke\.\d+)?)?$")]
    deploy_id: Annotated[str, Field(pattern=r"^[a-z0-9-]{1,12}$")] | None = None
    machine_type: Annotated[str, Field(min_length=1)] = "e2-standard-4"
    node_count: Annotated[int, Field(ge=1, le=1000)] = 3
    min_ready_nodes: Annotated[int, Field(ge=1)] | None = None
    ready_timeout_seconds: Annotated[int, Field(ge=30, le=7200)] = 900
    drain_timeout_seconds: Annotated[int, Field(ge=30, le=7200)] = 900

    @model_validator(mode="after")
    def _ready_within_count(self) -> GkeNodePool:
        if self.min_ready_nodes is not None and self.min_ready_nodes > self.node_count:
            raise ValueError("minReadyNodes must not exceed nodeCount")
        return self


class GkeBlueGreen(Model):
    """GKE's native in-place blue-green upgrade settings."""

    soak_duration_seconds: Annotated[int, Field(ge=0, le=604800)] = 3600
    batch_percentage: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    batch_node_count: Annotated[int, Field(ge=1)] | None = None
    batch_soak_duration_seconds: Annotated[int, Field(ge=0)] = 60


class GkeClusterSpec(Model):
    kind: Literal["gke"]
    project: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")]
    location: Annotated[str, Field(min_length=1)]
    kubernetes_version: KubeVersion
    node_pool: GkeNodePool
    upgrade: Literal["pool-per-version", "blue-green"] = "pool-per-version"
    blue_green: GkeBlueGreen | None = None
    capacity: Annotated[int, Field(ge=0)] = 0
    drained: bool = False
    monitoring: Monitoring = "none"
    authorized_networks: tuple[IPv4Network, ...] = ()
    """Where the control plane is reached from: the on-prem egress ranges of everything that
    runs `pulumi up` and kubectl. The only networks it admits (model.rules requires one)."""


class EncryptedValue(Model):
    """A `secure:` value as the stack file holds it: the release tools read the file without
    decrypting, while the engine hands the program the plain value."""

    secure: Annotated[str, Field(min_length=1)]


class ExistingClusterSpec(Model):
    """A cluster the stack does not create, reached through its kubeconfig (a stack secret).

    For teams that adopt the platform on clusters they already run, and for the local clusters
    of `scripts/local.sh`. Set it with
    `pulumi config set --secret --path 'hybrid-infra:clusters.<name>.kubeconfig' "$(cat kc)"`.
    """

    kind: Literal["existing"]
    kubeconfig: SecretStr | EncryptedValue
    cloud: Literal["eks", "gke", "onprem"] | None = None
    """Where it runs, for the annotations that keep its load balancers internal; none are set
    when it is not given (a cluster whose load balancers are private by its own design)."""
    monitoring: Monitoring = "none"
    capacity: Annotated[int, Field(ge=0)] = 0
    drained: bool = False


Cluster = OnPremClusterSpec | EksClusterSpec | GkeClusterSpec | ExistingClusterSpec
CLUSTER_KINDS: dict[str, type[Model]] = {
    "onprem": OnPremClusterSpec,
    "eks": EksClusterSpec,
    "gke": GkeClusterSpec,
    "existing": ExistingClusterSpec,
}


# --- prods and release ----------------------------------------------------------------------


class ProdSpec(Model):
    """One identical production copy, placed on a cluster."""

    cluster: Annotated[str, Field(min_length=1)]
    test: bool = False
    capacity: Annotated[int, Field(ge=1)] = 1000


class Segment(Model):
    """Users placed together; two Prods in different clusters make them redundant."""

    name: Name
    users: Annotated[int, Field(ge=0)]
    prods: Annotated[tuple[ProdName, ...], Field(min_length=1, max_length=2)]


def _cidr(value: Any) -> Any:
    """A network with host bits set is a typo for its network more often than not: say which."""
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a CIDR such as 10.20.0.0/16 or fd00:20::/32")
    try:
        ip_network(value, strict=True)
    except ValueError:
        try:
            network = ip_network(value, strict=False)
        except ValueError:
            raise ValueError(
                f"{value!r} is not a CIDR such as 10.20.0.0/16 or fd00:20::/32"
            ) from None
        raise ValueError(f"{value!r} has host bits set; write the range as {network}") from None
    return value


Cidr = Annotated[IPvAnyNetwork, BeforeValidator(_cidr)]


class EdgeTls(Model):
    """TLS, verified, from each edge proxy to the Prods it reaches on other clusters."""

    ca: SecretStr | EncryptedValue
    """The CA certificate (PEM; several during a rotation) that signs what each address in
    `edge.addresses` serves. A stack secret:
    `pulumi config set --secret --path 'hybrid-infra:edge.tls.ca' "$(cat ca.pem)"`."""

    @field_validator("ca")
    @classmethod
    def _ca_certificates(cls, ca: SecretStr | EncryptedValue) -> SecretStr | EncryptedValue:
        if isinstance(ca, SecretStr):  # the release tools read it still encrypted
            ca_certificates(ca.get_secret_value())
        return ca


def ca_certificates(pem: str) -> list[x509.Certificate]:
    """The CA certificates of a PEM bundle; a server's certificate or a key in it is refused."""
    if "PRIVATE KEY" in pem:
        raise ValueError(
            "holds a private key; give only the CA's certificate (its key stays where "
            "certificates are signed)"
        )
    try:
        certificates = x509.load_pem_x509_certificates(pem.encode())
    except ValueError:
        raise ValueError(
            'not a PEM certificate (-----BEGIN CERTIFICATE-----); give the CA\'s, "$(cat ca.pem)"'
        ) from None
    for certificate in certificates:
        try:
            is_ca = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            is_ca = False
        if not is_ca:
            raise ValueError(
                f"{certificate.subject.rfc4514_string()} is not a CA (no basicConstraints "
                "CA:TRUE); give the CA that signed the Prods' certificates"
            )
    return certificates


class WorkloadSecurity(Model):
    """How a workload's containers run under the `restricted` Pod Security Standard: as this
    user and group (above 10000, clear of the node's own accounts), on a read-only root
    filesystem. `writablePaths` are its exceptions: each gets an emptyDir."""

    run_as_user: Annotated[int, Field(ge=1, le=2147483647)] = 10001
    run_as_group: Annotated[int, Field(ge=1, le=2147483647)] = 10001
    writable_paths: tuple[Annotated[str, Field(pattern=r"^/[A-Za-z0-9._/-]*$")], ...] = ("/tmp",)


PRIVATE_NETWORKS = tuple(IPv4Network(c) for c in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
"""RFC 1918: where internal load balancers deliver from, unless a stack narrows it."""


class Edge(Model):
    """The edge proxy (HAProxy) on every cluster that hosts Prods; see model/edge_config.py."""

    default_segment: Name
    """Where a request with no or an unknown segment goes (never an error page)."""
    header: Annotated[str, Field(pattern=r"^[A-Za-z0-9-]+$")] = "X-Hybrid-Segment"
    cookie: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+$")] | None = None
    image: Annotated[str, Field(min_length=1)] = "haproxy:2.6"
    replicas: Annotated[int, Field(ge=2, le=20)] = 2
    slowstart_seconds: Annotated[int, Field(ge=0, le=3600)] = 60
    addresses: dict[ProdName, Annotated[str, Field(pattern=r"^[A-Za-z0-9.-]+:\d{1,5}$")]] = Field(
        default_factory=dict
    )
    """Prod → `host:port` at which proxies on *other* clusters reach it, instead of the internal
    load balancer the program gives the Prod (e.g. a DNS name of your own in front of it)."""
    trusted_sources: tuple[Cidr, ...] = ()
    """Client networks whose segment header (or cookie) is believed. From any other source it
    is removed and the request goes to `default_segment`; empty trusts no one."""
    scheme: Literal["internal", "internet-facing"] = "internal"
    """The proxy Service's load balancer: internal (each cloud's annotation) unless set."""
    source_ranges: tuple[Cidr, ...] = ()
    """Client ranges the proxy's load balancer admits (`loadBalancerSourceRanges`); empty:
    every address that can reach it, which for an internal one is the private network."""
    tls: EdgeTls | None = None
    """With it, Prods on other clusters are reached over TLS at `addresses` (model.rules);
    without it, in plaintext (docs/prods.md, "Encrypted across clusters")."""
    security: WorkloadSecurity = WorkloadSecurity(
        run_as_user=10099, run_as_group=10099, writable_paths=()
    )
    """HAProxy writes nothing (no pid file, no socket), so it needs no writable path."""
    peer_networks: tuple[Cidr, ...] = PRIVATE_NETWORKS
    """Where proxies on other clusters connect from, through the Prods' internal load
    balancers (which may rewrite the source): the only addresses, besides this cluster's
    proxies, that a Prod's NetworkPolicy admits. Narrow it to the clusters' node ranges."""


class Release(Model):
    version: Annotated[str, Field(min_length=1)]
    """The image tag of the release, optionally pinned by digest: `2.3.1@sha256:<64 hex>`."""
    previous_version: Annotated[str, Field(min_length=1)]
    wave: Annotated[int, Field(ge=0)] = 0
    verified: bool = False
    soak_minutes: Annotated[int, Field(ge=0, le=10080)] = 30
    """How long a wave runs, applied and alert-free, before the next may go."""


class Resources(Model):
    cpu_request: str = "250m"
    cpu_limit: str = "1"
    memory_request: str = "256Mi"
    memory_limit: str = "512Mi"
    ephemeral_storage_request: str = "128Mi"
    ephemeral_storage_limit: str = "1Gi"
    """The writable paths, the logs the node keeps (50 MiB at the kubelet's defaults) and the
    container's own layer: above it the kubelet evicts the Pod, not the node's other Pods."""


class PrometheusPods(Model):
    """The Pods that scrape the Prods on every cluster: their NetworkPolicy admits these only."""

    namespace: Annotated[str, Field(pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")] = "monitoring"
    pod_labels: Annotated[dict[str, str], Field(min_length=1)] = Field(
        default_factory=lambda: {"app.kubernetes.io/name": "prometheus"}
    )


class AppMetrics(Model):
    """Where every Prod's Pods serve Prometheus metrics; each Prod's PodMonitor scrapes them."""

    path: Annotated[str, Field(pattern=r"^/[A-Za-z0-9/._~-]*$")] = "/metrics"
    port: Port | None = None
    """The container port of the metrics; by default the app's own `port`."""
    prometheus: PrometheusPods = PrometheusPods()


class AppAlerts(Model):
    """The alerts every Prod ships with (a PrometheusRule), which the wave gate reads."""

    requests_metric: Annotated[str, Field(pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")] = (
        "http_requests_total"
    )
    errors_matcher: Annotated[str, Field(pattern=r'^[a-zA-Z_][a-zA-Z0-9_]*(=|!=|=~|!~)".*"$')] = (
        'code=~"5.."'
    )
    error_ratio_percent: Annotated[float, Field(gt=0, le=100)] = 2.0
    for_minutes: Annotated[int, Field(ge=1, le=60)] = 5


class App(Model):
    """What every Prod runs; only the image tag differs between waves."""

    image: Annotated[str, Field(pattern=r"^[a-z0-9./_-]+(:\d+)?[a-z0-9./_-]*$")]
    port: Port = 8080
    health_path: Annotated[str, Field(pattern=r"^/[A-Za-z0-9._~!$&()*+,;=:@%/?-]*$")] = "/healthz"
    """Probes and the edge proxies' checks ask it: a path and query, no space, quote or `#`
    (one word of the HAProxy configuration)."""
    min_replicas: Annotated[int, Field(ge=1)] = 2
    max_replicas: Annotated[int, Field(ge=1)] = 10
    cpu_target_percent: Annotated[int, Field(ge=10, le=100)] = 70
    max_surge: Annotated[str, Field(pattern=r"^\d+%?$")] = "25%"
    resources: Resources = Resources()
    metrics: AppMetrics = AppMetrics()
    alerts: AppAlerts = AppAlerts()
    security: WorkloadSecurity = WorkloadSecurity()
    egress: tuple[Cidr, ...] = ()
    """Networks the app connects to (its databases, the APIs it calls); DNS is always allowed.
    Every other connection out of a Prod is refused by its NetworkPolicy."""

    @model_validator(mode="after")
    def _replicas_ordered(self) -> App:
        if self.min_replicas > self.max_replicas:
            raise ValueError("minReplicas must not exceed maxReplicas")
        return self


def version_tag(version: str) -> str:
    """A release version without the digest that may pin it: the Prods' version label."""
    return version.partition("@")[0]


# --- the whole stack ------------------------------------------------------------------------


class StackConfig(Model):
    aws: AwsConfig | None = None
    """Required by load balancers, discovery and EKS clusters (`model.rules`)."""
    on_prem: OnPremConfig | None = None
    """Required by load balancers, discovery, on-prem and EKS clusters (`model.rules`)."""
    tags: Annotated[dict[str, str], Field(min_length=1)]
    protect: bool = False
    load_balancers: tuple[LoadBalancerSpec, ...] = ()
    clusters: dict[str, Cluster] = Field(default_factory=dict)
    prods: dict[ProdName, ProdSpec] = Field(default_factory=dict)
    segments: tuple[Segment, ...] = ()
    app: App | None = None
    release: Release | None = None
    discovery: Discovery | None = None
    edge: Edge | None = None


M = TypeVar("M", bound=Model)
T = TypeVar("T")


def required(value: T | None, key: str) -> T:
    """A key that `model.rules` has already required: a None here is a bug, said plainly."""
    if value is None:
        raise ConfigError([f"{PROJECT}:{key}: required key is missing"])
    return value


_FIELDS = {field.alias or name: field for name, field in StackConfig.model_fields.items()}


def parse_keys(raw: Mapping[str, Any], source: str | None = None) -> StackConfig:
    """Each `hybrid-infra:*` value (keys without the namespace) into its model, or raise.

    Each top-level key is validated on its own so that one broken key does not hide the
    problems of the others. The rules across keys are `model.rules`; `model.stack.parse` runs
    both.
    """
    problems: list[str] = []
    parsed: dict[str, Any] = {}
    for key in sorted(set(raw) - set(_FIELDS)):
        problems.append(f"{PROJECT}:{key}: unknown key{did_you_mean(key, _FIELDS)}")
    for key, field in _FIELDS.items():
        if key not in raw:
            if field.is_required():
                problems.append(f"{PROJECT}:{key}: required key is missing")
            continue
        value = raw[key]
        if key == "clusters":
            parsed[key] = _parse_clusters(value, problems)
        else:
            parsed[key] = _validate(
                _adapter_for(key), value, f"{PROJECT}:{key}", problems, _FIELDS[key].annotation
            )
    if problems:
        raise ConfigError(problems, source)
    return StackConfig.model_validate(parsed)


def _adapter_for(key: str) -> Callable[[Any], Any]:
    return TypeAdapter(_FIELDS[key].annotation).validate_python  # type: ignore[arg-type]


def _validate(
    validate: Callable[[Any], M], value: Any, path: str, problems: list[str], shape: Any
) -> M | None:
    try:
        return validate(value)
    except ValidationError as error:
        problems.extend(_describe(error, path, shape))
        return None


def _parse_clusters(value: Any, problems: list[str]) -> dict[str, Cluster]:
    """Clusters are keyed by name and tagged by `kind`; dispatch by hand for clean key paths."""
    path = f"{PROJECT}:clusters"
    if not isinstance(value, dict):
        problems.append(f"{path}: must be a map of cluster name to cluster")
        return {}
    clusters: dict[str, Cluster] = {}
    for name, body in value.items():
        where = f"{path}.{name}"
        kind = body.get("kind") if isinstance(body, dict) else None
        model = CLUSTER_KINDS.get(kind) if isinstance(kind, str) else None
        if model is None:
            kinds = ", ".join(CLUSTER_KINDS)
            problems.append(f"{where}.kind: must be one of {kinds} (got {kind!r})")
            continue
        cluster = _validate(model.model_validate, body, where, problems, model)
        if cluster is not None:
            clusters[name] = cluster  # type: ignore[assignment]
    return clusters


def _describe(error: ValidationError, path: str, shape: Any) -> list[str]:
    lines = []
    for item in error.errors():
        loc = item["loc"]
        where = path + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc)
        # YAML has lists, not tuples; say it in the stack file's words.
        message = item["msg"].replace("Tuple should", "List should")
        if item["type"] == "extra_forbidden":
            message = "unknown key" + did_you_mean(str(loc[-1]), _keys_at(shape, loc[:-1]))
        elif item["type"] == "missing":
            message = "required key is missing"
        lines.append(f"{where}: {message}")
    return lines


def _keys_at(shape: Any, loc: tuple[int | str, ...]) -> list[str]:
    """The keys a model accepts at `loc` below `shape`, to suggest the one a typo meant."""
    for part in loc:
        shape = _unwrap(shape)
        if get_origin(shape) is tuple:
            shape = get_args(shape)[0]
        elif get_origin(shape) is dict:
            shape = get_args(shape)[1]
        elif isinstance(shape, type) and issubclass(shape, BaseModel):
            fields = {f.alias or n: f for n, f in shape.model_fields.items()}
            if part not in fields:
                return []
            shape = fields[part].annotation
        else:
            return []
    shape = _unwrap(shape)
    if isinstance(shape, type) and issubclass(shape, BaseModel):
        return [f.alias or n for n, f in shape.model_fields.items()]
    return []


def _unwrap(shape: Any) -> Any:
    """Strip `Annotated[...]` and `X | None` down to the type that has the keys."""
    while True:
        if get_origin(shape) is Annotated:
            shape = get_args(shape)[0]
        elif get_origin(shape) in (Union, UnionType):
            options = [a for a in get_args(shape) if a is not type(None)]
            if len(options) != 1:
                return shape
            shape = options[0]
        else:
            return shape


def did_you_mean(key: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(key, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def duplicates(names: Iterable[str]) -> set[str]:
    return {name for name, count in Counter(names).items() if count > 1}
