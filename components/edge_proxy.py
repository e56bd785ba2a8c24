"""The edge proxy on one cluster: HAProxy in front of the Prods, configured from the routing.

A routing change (a rollback, a drain, a new wave) is a new configuration. Its hash is in the
Pod template, so the Deployment rolls: with `maxUnavailable: 0` a new Pod is Ready before an old
one stops, and each old Pod gets a `preStop` pause so its load balancer stops sending to it
before HAProxy finishes its open connections. A PodDisruptionBudget keeps one proxy through
node drains.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
from pulumi_kubernetes.meta.v1 import ObjectMetaArgs

from model.config import Edge
from model.edge_config import PORT, EdgeSettings

CONFIG_KEY = "haproxy.cfg"
LABELS = {"app.kubernetes.io/name": "edge-proxy", "app.kubernetes.io/part-of": "hybrid-infra"}
DRAIN_SECONDS = 15


def edge_settings(edge: Edge, cluster: str) -> EdgeSettings:
    return EdgeSettings(
        default_segment=edge.default_segment,
        header=edge.header,
        cookie=edge.cookie,
        slowstart_seconds=edge.slowstart_seconds,
        cluster=cluster,
        addresses=dict(edge.addresses),
        trusted_sources=edge.trusted_sources,
    )


@dataclass(frozen=True)
class EdgeProxyArgs:
    namespace: pulumi.Input[str]
    edge: Edge
    config: str
    """The rendered haproxy.cfg (model.edge_config.render)."""


class EdgeProxy(pulumi.ComponentResource):
    """ConfigMap, Deployment, PodDisruptionBudget and Service of one cluster's edge proxy."""

    def __init__(
        self, name: str, args: EdgeProxyArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("hybrid-infra:edge:EdgeProxy", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        meta = ObjectMetaArgs(name="edge-proxy", namespace=args.namespace, labels=LABELS)
        config = k8s.core.v1.ConfigMap(
            f"{name}-config", metadata=meta, data={CONFIG_KEY: args.config}, opts=child
        )
        self._deployment(name, args, meta, config, child)
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-budget",
            metadata=meta,
            spec=k8s.policy.v1.PodDisruptionBudgetSpecArgs(
                min_available=1, selector=k8s.meta.v1.LabelSelectorArgs(match_labels=LABELS)
            ),
            opts=child,
        )
        k8s.core.v1.Service(
            f"{name}-service",
            metadata=meta,
            spec=k8s.core.v1.ServiceSpecArgs(
                type="LoadBalancer",
                selector=LABELS,
                ports=[k8s.core.v1.ServicePortArgs(name="http", port=80, target_port=PORT)],
            ),
            opts=child,
        )
        self.register_outputs({})

    def _deployment(
        self,
        name: str,
        args: EdgeProxyArgs,
        meta: ObjectMetaArgs,
        config: k8s.core.v1.ConfigMap,
        opts: pulumi.ResourceOptions,
    ) -> k8s.apps.v1.Deployment:
        """The configuration's hash is in the Pod template: a new configuration rolls the Pods."""
        digest = hashlib.sha256(args.config.encode()).hexdigest()[:16]
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
                    metadata=ObjectMetaArgs(
                        labels=LABELS, annotations={"hybrid-infra/config-sha256": digest}
                    ),
                    spec=k8s.core.v1.PodSpecArgs(
                        termination_grace_period_seconds=DRAIN_SECONDS + 30,
                        containers=[
                            k8s.core.v1.ContainerArgs(
                                name="haproxy",
                                image=args.edge.image,
                                args=["-f", f"/usr/local/etc/haproxy/{CONFIG_KEY}"],
                                ports=[k8s.core.v1.ContainerPortArgs(container_port=PORT)],
                                readiness_probe=k8s.core.v1.ProbeArgs(
                                    tcp_socket=k8s.core.v1.TCPSocketActionArgs(port=PORT),
                                    period_seconds=2,
                                ),
                                # A command, not the `sleep` action: that one needs
                                # Kubernetes 1.30; the haproxy image (Debian) has `sleep`.
                                lifecycle=k8s.core.v1.LifecycleArgs(
                                    pre_stop=k8s.core.v1.LifecycleHandlerArgs(
                                        exec_=k8s.core.v1.ExecActionArgs(
                                            command=["sleep", str(DRAIN_SECONDS)]
                                        )
                                    )
                                ),
                                volume_mounts=[
                                    k8s.core.v1.VolumeMountArgs(
                                        name="config", mount_path="/usr/local/etc/haproxy"
                                    )
                                ],
                            )
                        ],
                        volumes=[
                            k8s.core.v1.VolumeArgs(
                                name="config",
                                config_map=k8s.core.v1.ConfigMapVolumeSourceArgs(
                                    name=config.metadata.name
                                ),
                            )
                        ],
                    ),
                ),
            ),
            opts=opts,
        )
