"""The edge proxy on one cluster: HAProxy in front of the Prods, configured from the routing.

A routing change (a rollback, a drain, a new wave) is a new configuration, and the proxies roll
onto it: with `maxUnavailable: 0` a new Pod is Ready before an old one stops, and each old Pod
gets a `preStop` pause so its load balancer stops sending to it before HAProxy finishes its open
connections. A PodDisruptionBudget keeps one proxy through node drains.

**The configuration is a new ConfigMap per content, created before the old one is deleted.**
pulumi-kubernetes replaces a ConfigMap whose data changes (it treats ConfigMaps as immutable
unless told otherwise). Under a fixed name that replacement has to delete the old object before
it can create the new one: for a moment the proxies' volume names nothing, and a Pod that starts
then cannot mount it. Here the name carries a hash of the content (`edge-proxy-1a2b3c4d5e`), so a
new configuration is a new name: Pulumi creates it first, the Deployment's volume moves to it
(its Pod template changes, so it rolls), and the old ConfigMap is deleted once the Deployment
has rolled (pulumi-kubernetes waits for the rollout), so no Pod is left mounting it. Pulumi's
autonaming would also give a new name, but it builds it from the resource name
(`A-edge-proxy-config-…`), and Kubernetes names are lowercase. The ConfigMap is `immutable`
too: the API server refuses edits, and kubelets stop watching it.

**Pods** request CPU and memory (memory limited at the request, so a proxy at its limit is not
the first thing evicted under node pressure), spread over nodes, and have a liveness probe that
HAProxy answers itself (`model.edge_config.liveness_frontend`), distinct from readiness on the
traffic port. They run as `edge.security`'s user on a read-only root filesystem, with no
capability and no service-account token (`model.pod_security`), and their NetworkPolicies let
users in and the proxies out to the Prods only (`model.network_policy`).

**The CA of `edge.tls`** (the proxies verify the Prods they reach on other clusters with it) is a
Secret named by its content like the configuration, immutable, and mounted read-only at
`model.edge_config.CA_FILE`: HAProxy reads it only when it starts, so a new CA is a new Secret,
which rolls the Pods onto it.

**The Service is internal by default**, with each cloud's annotation
(`model.service_exposure`), and admits `edge.sourceRanges` only when they are given.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
from pulumi_kubernetes.meta.v1 import ObjectMetaArgs
from pydantic import SecretStr

from components.network_policy import isolate
from components.wire import wire
from model.config import Edge, EdgeTls
from model.edge_config import CA_FILE, LIVENESS_PATH, LIVENESS_PORT, PORT, EdgeSettings
from model.fleet import ClusterKind
from model.pod_security import (
    container_security_context,
    pod_security_context,
    writable_mounts,
    writable_volumes,
)
from model.service_exposure import load_balancer_annotations
from model.stackfile import SECRET_PLACEHOLDER

CONFIG_KEY = "haproxy.cfg"
CONFIG_PREFIX = "edge-proxy-"
LABELS = {"app.kubernetes.io/name": "edge-proxy", "app.kubernetes.io/part-of": "hybrid-infra"}
DRAIN_SECONDS = 15
CPU_REQUEST = "100m"
MEMORY = "256Mi"
"""Request and limit. At `maxconn 4096`, two 16 KiB buffers per connection come to 128 MiB;
the rest is headroom for the process itself."""
EPHEMERAL_REQUEST = "64Mi"
EPHEMERAL_LIMIT = "256Mi"
"""HAProxy writes no file; what counts is its log on stdout, which the node keeps (up to
50 MiB at the kubelet's default rotation)."""


def edge_settings(edge: Edge, cluster: str, addresses: Mapping[str, str]) -> EdgeSettings:
    """`addresses` are the Prods' internal load balancers; `edge.addresses` overrides them."""
    return EdgeSettings(
        default_segment=edge.default_segment,
        header=edge.header,
        cookie=edge.cookie,
        slowstart_seconds=edge.slowstart_seconds,
        cluster=cluster,
        addresses={**addresses, **edge.addresses},
        trusted_sources=edge.trusted_sources,
        ca_file=CA_FILE if edge.tls else None,
    )


def config_map_name(config: str) -> str:
    """The ConfigMap's name follows its content: a new configuration is a new ConfigMap."""
    return content_name(CONFIG_PREFIX, config)


def content_name(prefix: str, content: str) -> str:
    """`<prefix><sha256[:10]>`: a Kubernetes name that changes exactly when the content does, so
    pulumi-kubernetes' replacement of a changed ConfigMap creates the new one first."""
    return prefix + hashlib.sha256(content.encode()).hexdigest()[:10]


@dataclass(frozen=True)
class EdgeProxyArgs:
    namespace: pulumi.Input[str]
    edge: Edge
    config: pulumi.Input[str]
    """The rendered haproxy.cfg (model.edge_config.render, then the liveness frontend)."""
    cluster_kind: ClusterKind
    """Which cloud's annotations keep the Service's load balancer internal."""
    network_policy: Mapping[str, Any]
    """What the proxies' namespace admits; nothing else gets in or out (`model.network_policy`)."""


class EdgeProxy(pulumi.ComponentResource):
    """ConfigMap, Deployment, PodDisruptionBudget and Service of one cluster's edge proxy."""

    def __init__(
        self, name: str, args: EdgeProxyArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("hybrid-infra:edge:EdgeProxy", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        meta = ObjectMetaArgs(name="edge-proxy", namespace=args.namespace, labels=LABELS)
        text = pulumi.Output.from_input(args.config)
        config = k8s.core.v1.ConfigMap(
            f"{name}-config",
            metadata=ObjectMetaArgs(
                name=text.apply(config_map_name), namespace=args.namespace, labels=LABELS
            ),
            data={CONFIG_KEY: text},
            immutable=True,
            opts=child,
        )
        ca = _ca_secret(name, args.namespace, args.edge.tls, child) if args.edge.tls else None
        self._deployment(name, args, meta, config, child, ca)
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-budget",
            metadata=meta,
            spec=k8s.policy.v1.PodDisruptionBudgetSpecArgs(
                min_available=1, selector=k8s.meta.v1.LabelSelectorArgs(match_labels=LABELS)
            ),
            opts=child,
        )
        self._service(name, args, child)
        isolate(name, args.namespace, "edge-proxy", args.network_policy, LABELS, child)
        self.register_outputs({})

    def _deployment(
        self,
        name: str,
        args: EdgeProxyArgs,
        meta: ObjectMetaArgs,
        config: k8s.core.v1.ConfigMap,
        opts: pulumi.ResourceOptions,
        ca: k8s.core.v1.Secret | None = None,
    ) -> k8s.apps.v1.Deployment:
        """The volume names the configuration's ConfigMap: a new configuration rolls the Pods."""
        return k8s.apps.v1.Deployment(
            name,
            metadata=meta,
            spec=k8s.apps.v1.DeploymentSpecArgs(
                replicas=args.edge.replicas,
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=LABELS),
                strategy=k8s.apps.v1.DeploymentStrategyArgs(
                    type="RollingUpdate",
                    rolling_update=k8s.apps.v1.RollingUpdateDeploymentArgs(
                        max_unavailable=0, max_surge=1
                    ),
                ),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=ObjectMetaArgs(labels=LABELS),
                    spec=k8s.core.v1.PodSpecArgs(
                        termination_grace_period_seconds=DRAIN_SECONDS + 30,
                        containers=[_container(args.edge)],
                        topology_spread_constraints=_spread(),
                        # HAProxy never calls the Kubernetes API.
                        automount_service_account_token=False,
                        security_context=wire(pod_security_context(args.edge.security)),
                        volumes=[
                            k8s.core.v1.VolumeArgs(
                                name="config",
                                config_map=k8s.core.v1.ConfigMapVolumeSourceArgs(
                                    name=config.metadata.name
                                ),
                            ),
                            *_ca_volumes(ca),
                            *wire(writable_volumes(args.edge.security)),
                        ],
                    ),
                ),
            ),
            opts=opts,
        )

    def _service(
        self, name: str, args: EdgeProxyArgs, opts: pulumi.ResourceOptions
    ) -> k8s.core.v1.Service:
        """Internal unless `edge.scheme` says otherwise; only `edge.sourceRanges` get in."""
        return k8s.core.v1.Service(
            f"{name}-service",
            metadata=ObjectMetaArgs(
                name="edge-proxy",
                namespace=args.namespace,
                labels=LABELS,
                annotations=load_balancer_annotations(args.cluster_kind, args.edge.scheme),
            ),
            spec=k8s.core.v1.ServiceSpecArgs(
                type="LoadBalancer",
                selector=LABELS,
                ports=[k8s.core.v1.ServicePortArgs(name="http", port=80, target_port=PORT)],
                load_balancer_source_ranges=[str(r) for r in args.edge.source_ranges] or None,
            ),
            opts=opts,
        )


def _container(edge: Edge) -> k8s.core.v1.ContainerArgs:
    """Readiness: the traffic port accepts. Liveness: HAProxy itself answers, slower to act."""
    return k8s.core.v1.ContainerArgs(
        name="haproxy",
        image=edge.image,
        args=["-f", f"/usr/local/etc/haproxy/{CONFIG_KEY}"],
        ports=[
            k8s.core.v1.ContainerPortArgs(name="http", container_port=PORT),
            k8s.core.v1.ContainerPortArgs(name="liveness", container_port=LIVENESS_PORT),
        ],
        readiness_probe=k8s.core.v1.ProbeArgs(
            tcp_socket=k8s.core.v1.TCPSocketActionArgs(port=PORT), period_seconds=2
        ),
        liveness_probe=k8s.core.v1.ProbeArgs(
            http_get=k8s.core.v1.HTTPGetActionArgs(path=LIVENESS_PATH, port=LIVENESS_PORT),
            initial_delay_seconds=10,
            period_seconds=10,
            timeout_seconds=2,
            failure_threshold=3,
        ),
        resources=k8s.core.v1.ResourceRequirementsArgs(
            requests={
                "cpu": CPU_REQUEST,
                "memory": MEMORY,
                "ephemeral-storage": EPHEMERAL_REQUEST,
            },
            # No CPU limit: throttling a proxy adds latency to every request it carries.
            limits={"memory": MEMORY, "ephemeral-storage": EPHEMERAL_LIMIT},
        ),
        # Listens on 8080 and 8081, so it needs no capability (none to bind below 1024).
        security_context=wire(container_security_context()),
        # A command, not the `sleep` action: that one needs Kubernetes 1.30; the haproxy
        # image (Debian) has `sleep`.
        lifecycle=k8s.core.v1.LifecycleArgs(
            pre_stop=k8s.core.v1.LifecycleHandlerArgs(
                exec_=k8s.core.v1.ExecActionArgs(command=["sleep", str(DRAIN_SECONDS)])
            )
        ),
        volume_mounts=[
            k8s.core.v1.VolumeMountArgs(
                name="config", mount_path="/usr/local/etc/haproxy", read_only=True
            ),
            *_ca_mounts(edge),
            *wire(writable_mounts(edge.security)),
        ],
    )


CA_PREFIX = "edge-proxy-tls-ca-"
CA_VOLUME = "tls-ca"


def _ca_secret(
    name: str, namespace: pulumi.Input[str], tls: EdgeTls, opts: pulumi.ResourceOptions
) -> k8s.core.v1.Secret:
    """The CA of `edge.tls`, named by its content: a new CA is a new Secret, and rolls the Pods."""
    pem = _ca_pem(tls)
    return k8s.core.v1.Secret(
        f"{name}-tls-ca",
        metadata=ObjectMetaArgs(
            name=content_name(CA_PREFIX, pem), namespace=namespace, labels=LABELS
        ),
        string_data={PurePosixPath(CA_FILE).name: pulumi.Output.secret(pem)},
        immutable=True,
        opts=opts,
    )


def _ca_pem(tls: EdgeTls) -> str:
    """The CA as the engine decrypted it. `tools.synth` holds no stack key and passes a
    `secure:` value as it is: the Secret then holds the placeholder, marked secret, as every
    secure value does there."""
    return tls.ca.get_secret_value() if isinstance(tls.ca, SecretStr) else SECRET_PLACEHOLDER


def _ca_volumes(ca: k8s.core.v1.Secret | None) -> list[k8s.core.v1.VolumeArgs]:
    if ca is None:
        return []
    source = k8s.core.v1.SecretVolumeSourceArgs(secret_name=ca.metadata.name)
    return [k8s.core.v1.VolumeArgs(name=CA_VOLUME, secret=source)]


def _ca_mounts(edge: Edge) -> list[k8s.core.v1.VolumeMountArgs]:
    if edge.tls is None:
        return []
    directory = str(PurePosixPath(CA_FILE).parent)
    return [k8s.core.v1.VolumeMountArgs(name=CA_VOLUME, mount_path=directory, read_only=True)]


def _spread() -> list[k8s.core.v1.TopologySpreadConstraintArgs]:
    """Over nodes, best effort (`ScheduleAnyway`).

    The proxies roll on every routing change, a drain included, with `maxUnavailable: 0`: the
    roll waits for each surge Pod. Under `DoNotSchedule` the scheduler may only use the nodes
    with the fewest proxies, and when those are full the surge Pod stays Pending, the roll
    stops, and the `pulumi up` of a drain waits during the incident it is meant to end. Best
    effort still puts each Pod on the least-loaded node that has room; `pod-template-hash`
    spreads the new ReplicaSet on its own during a roll.
    """
    return [
        k8s.core.v1.TopologySpreadConstraintArgs(
            max_skew=1,
            topology_key="kubernetes.io/hostname",
            when_unsatisfiable="ScheduleAnyway",
            label_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=LABELS),
            match_label_keys=["pod-template-hash"],
        )
    ]
