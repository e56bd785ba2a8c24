"""One Prod: a complete, identical production copy of the app on one cluster, built at will.

Every Prod is the same namespace, Deployment, Service, PodDisruptionBudget and autoscaler,
with its alert rules and PodMonitor; only the image tag (its wave's version) and its labels
differ. Rolling updates never take a serving Pod away before its replacement is ready
(maxUnavailable 0), Pods are spread over zones and nodes so one failure takes few of them, and
load, not a fixed count, sets the replica count.
Its Pods run hardened (`model.pod_security`: the namespace enforces the `restricted` Pod
Security Standard), and its NetworkPolicies admit only the proxies and Prometheus
(`model.network_policy`).
Where proxies on other clusters route to the Prod, its Service is an internal L4 load balancer
(`model.service_exposure`), and they reach it at the address the cloud gives it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
from pulumi_kubernetes.apps.v1 import (
    DeploymentSpecArgs,
    DeploymentStrategyArgs,
    RollingUpdateDeploymentArgs,
)
from pulumi_kubernetes.autoscaling.v2 import (
    CrossVersionObjectReferenceArgs,
    HorizontalPodAutoscalerSpecArgs,
    MetricSpecArgs,
    MetricTargetArgs,
    ResourceMetricSourceArgs,
)
from pulumi_kubernetes.core.v1 import (
    ContainerArgs,
    ContainerPortArgs,
    HTTPGetActionArgs,
    PodSpecArgs,
    PodTemplateSpecArgs,
    ProbeArgs,
    ResourceRequirementsArgs,
    ServicePortArgs,
    ServiceSpecArgs,
    TCPSocketActionArgs,
    TopologySpreadConstraintArgs,
)
from pulumi_kubernetes.meta.v1 import LabelSelectorArgs, ObjectMetaArgs
from pulumi_kubernetes.policy.v1 import PodDisruptionBudgetSpecArgs

from components.clusters.fleet import ClusterHandle
from components.network_policy import isolate
from components.wire import wire
from model.config import App, version_tag
from model.pod_security import (
    container_security_context,
    pod_security_context,
    psa_labels,
    writable_mounts,
    writable_volumes,
)
from model.prod_alerts import pod_monitor, prod_alert_rules
from model.service_exposure import load_balancer_annotations

APP_NAME = "app"
"""The Deployment, Service and container of every Prod: the namespace tells Prods apart."""
PROD_LABEL = "hybrid-infra/prod"
CLUSTER_LABEL = "hybrid-infra/cluster"
VERSION_LABEL = "app.kubernetes.io/version"
PORT_NAME = "http"
METRICS_PORT_NAME = "metrics"
MONITORING_API = "monitoring.coreos.com/v1"


@dataclass(frozen=True)
class ProdArgs:
    cluster: ClusterHandle
    app: App
    version: str
    """The release version of this Prod's wave: the image tag, and maybe its digest."""
    wave: int
    network_policy: Mapping[str, Any]
    """What its namespace admits; nothing else gets in or out (`model.network_policy`)."""
    reached_from_other_clusters: bool = False
    """Proxies on other clusters may route to it, so its Service is an internal load balancer."""


class Prod(pulumi.ComponentResource):
    """Namespace → Deployment → Service → PodDisruptionBudget → HorizontalPodAutoscaler, then
    its monitoring: alert rules and the PodMonitor that feeds them."""

    endpoint: str
    namespace_name: str
    cluster_name: str
    serving: list[pulumi.Resource]
    """What users reach: routing waits for these, never for the Prod's monitoring."""

    def __init__(
        self, name: str, args: ProdArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("hybrid-infra:prod:Prod", name, None, opts)
        app = args.app
        self.namespace_name = namespace_name(name)
        self.endpoint = service_endpoint(name, app.port)
        self.cluster_name = args.cluster.name
        labels = prod_labels(name, args.cluster.name, args.version)
        selector = selector_labels(name)
        child = pulumi.ResourceOptions(parent=self, provider=args.cluster.provider)

        self.namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata=ObjectMetaArgs(name=self.namespace_name, labels={**labels, **psa_labels()}),
            opts=child,
        )
        # Through the namespace's output, so everything below waits for the namespace.
        meta = ObjectMetaArgs(name=APP_NAME, namespace=self.namespace.metadata.name, labels=labels)
        self.network_policies = isolate(
            name, meta.namespace, APP_NAME, args.network_policy, labels, child
        )
        self.deployment = self._deployment(name, args, meta, labels, selector, child)
        self.service = self._service(name, args, meta, selector, child)
        self.disruption_budget = self._disruption_budget(name, meta, selector, child)
        self.autoscaler = self._autoscaler(name, app, meta, child)
        self.serving = [self.deployment, self.service]
        self.alerts, self.metrics = self._monitoring(name, app, meta, selector, child)
        self.register_outputs(
            {
                "endpoint": self.endpoint,
                "cluster": args.cluster.name,
                "version": args.version,
                "wave": args.wave,
            }
        )

    def _deployment(
        self,
        name: str,
        args: ProdArgs,
        meta: ObjectMetaArgs,
        labels: dict[str, str],
        selector: dict[str, str],
        opts: pulumi.ResourceOptions,
    ) -> k8s.apps.v1.Deployment:
        return k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=meta,
            spec=DeploymentSpecArgs(
                # No `replicas`: the autoscaler owns the count. Declaring one here would reset
                # the scale to it on every rollout, in the middle of load.
                selector=LabelSelectorArgs(match_labels=selector),
                strategy=DeploymentStrategyArgs(
                    type="RollingUpdate",
                    rolling_update=RollingUpdateDeploymentArgs(
                        max_unavailable=0, max_surge=int_or_percent(args.app.max_surge)
                    ),
                ),
                # A Pod that crashes right after turning ready must not count as available.
                min_ready_seconds=10,
                template=PodTemplateSpecArgs(
                    metadata=ObjectMetaArgs(labels={**labels, **selector}),
                    spec=PodSpecArgs(
                        containers=[_container(args.app, args.version)],
                        topology_spread_constraints=_spread(selector),
                        # The app never calls the Kubernetes API.
                        automount_service_account_token=False,
                        security_context=wire(pod_security_context(args.app.security)),
                        volumes=wire(writable_volumes(args.app.security)),
                    ),
                ),
            ),
            opts=opts,
        )

    def _service(
        self,
        name: str,
        args: ProdArgs,
        meta: ObjectMetaArgs,
        selector: dict[str, str],
        opts: pulumi.ResourceOptions,
    ) -> k8s.core.v1.Service:
        """The proxies on its own cluster reach it by cluster DNS; proxies on other clusters
        through an internal L4 load balancer, kept internal by the cloud's annotations. One
        Service for both (a LoadBalancer Service has a cluster IP too), so a scrape that
        selects Services by label finds each Pod once."""
        remote = args.reached_from_other_clusters
        return k8s.core.v1.Service(
            f"{name}-service",
            metadata=ObjectMetaArgs(
                name=meta.name,
                namespace=meta.namespace,
                labels=meta.labels,
                annotations=load_balancer_annotations(args.cluster.load_balancer_cloud)
                if remote
                else None,
            ),
            spec=ServiceSpecArgs(
                type="LoadBalancer" if remote else "ClusterIP",
                selector=selector,
                ports=[ServicePortArgs(name=PORT_NAME, port=args.app.port, target_port=PORT_NAME)],
            ),
            opts=opts,
        )

    def _disruption_budget(
        self,
        name: str,
        meta: ObjectMetaArgs,
        selector: dict[str, str],
        opts: pulumi.ResourceOptions,
    ) -> k8s.policy.v1.PodDisruptionBudget:
        return k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb",
            metadata=meta,
            spec=PodDisruptionBudgetSpecArgs(
                # One at a time works at every scale the autoscaler picks.
                max_unavailable=1,
                selector=LabelSelectorArgs(match_labels=selector),
                # A crash-looping Pod protects nothing; it must not block a node drain.
                unhealthy_pod_eviction_policy="AlwaysAllow",
            ),
            opts=opts,
        )

    def _autoscaler(
        self, name: str, app: App, meta: ObjectMetaArgs, opts: pulumi.ResourceOptions
    ) -> k8s.autoscaling.v2.HorizontalPodAutoscaler:
        return k8s.autoscaling.v2.HorizontalPodAutoscaler(
            f"{name}-hpa",
            metadata=meta,
            spec=HorizontalPodAutoscalerSpecArgs(
                scale_target_ref=CrossVersionObjectReferenceArgs(
                    api_version="apps/v1", kind="Deployment", name=APP_NAME
                ),
                min_replicas=app.min_replicas,
                max_replicas=app.max_replicas,
                metrics=[
                    MetricSpecArgs(
                        type="Resource",
                        resource=ResourceMetricSourceArgs(
                            name="cpu",
                            target=MetricTargetArgs(
                                type="Utilization", average_utilization=app.cpu_target_percent
                            ),
                        ),
                    )
                ],
            ),
            opts=pulumi.ResourceOptions.merge(
                opts, pulumi.ResourceOptions(depends_on=[self.deployment])
            ),
        )

    def _monitoring(
        self,
        name: str,
        app: App,
        meta: ObjectMetaArgs,
        selector: dict[str, str],
        opts: pulumi.ResourceOptions,
    ) -> tuple[k8s.apiextensions.CustomResource, k8s.apiextensions.CustomResource]:
        """The alert rules the wave gate reads, and the scrape that gives them data.

        Routing and the edge proxies wait for `serving` only: a PrometheusRule that a cluster
        refuses, or that is slow to be accepted, never holds back where users go.
        """
        rules = k8s.apiextensions.CustomResource(
            f"{name}-alerts",
            api_version=MONITORING_API,
            kind="PrometheusRule",
            metadata=meta,
            spec=prod_alert_rules(name, self.namespace_name, APP_NAME, app.alerts),
            opts=opts,
        )
        monitor = k8s.apiextensions.CustomResource(
            f"{name}-metrics",
            api_version=MONITORING_API,
            kind="PodMonitor",
            metadata=meta,
            spec=pod_monitor(selector, PROD_LABEL, metrics_port_name(app), app.metrics),
            opts=opts,
        )
        return rules, monitor


def namespace_name(prod: str) -> str:
    """`A-1` → `prod-a-1`; config rejects Prod names that differ only in case."""
    return f"prod-{prod.lower()}"


def service_endpoint(prod: str, port: int) -> str:
    """The Prod's address inside its own cluster."""
    return f"http://{APP_NAME}.{namespace_name(prod)}.svc.cluster.local:{port}"


def remote_address(prod: str, service: k8s.core.v1.Service, port: int) -> pulumi.Output[str]:
    """Where the cloud put the Service's load balancer (pulumi-kubernetes waits for it)."""
    return service.status.apply(lambda status: load_balancer_address(prod, status, port))


def load_balancer_address(prod: str, status: Any, port: int) -> str:
    """`host:port` of the first ingress of a Service's status: a DNS name (AWS) or an IP."""
    balancer = getattr(status, "load_balancer", None)
    for ingress in getattr(balancer, "ingress", None) or ():
        host = getattr(ingress, "hostname", None) or getattr(ingress, "ip", None)
        if host:
            return f"{host}:{port}"
    raise pulumi.RunError(
        f"{prod}: its internal load balancer has no address, so proxies on other clusters "
        "cannot reach it; check the cluster's load balancer controller (kubectl describe "
        f"service {APP_NAME} -n {namespace_name(prod)}), or give "
        f"hybrid-infra:edge.addresses.{prod}"
    )


def selector_labels(prod: str) -> dict[str, str]:
    """Stable for the Prod's life: a Deployment's selector cannot change."""
    return {"app.kubernetes.io/name": APP_NAME, PROD_LABEL: prod}


def prod_labels(prod: str, cluster: str, version: str) -> dict[str, str]:
    """What dashboards and alerts group by; `hybrid-infra/prod` becomes the alert label.

    Not the wave: it is the Prod's place in the release plan, which moves when segments move
    (a rollback, a drain), and a routing change must never write to a Prod (the stack's
    `releasePlan` output gives each Prod's wave).
    """
    return {
        "app.kubernetes.io/part-of": "hybrid-infra",
        PROD_LABEL: prod,
        CLUSTER_LABEL: cluster,
        VERSION_LABEL: version_tag(version),
    }


def metrics_port_name(app: App) -> str:
    """The container port the PodMonitor scrapes: the app's own unless metrics has its own."""
    port = app.metrics.port
    return PORT_NAME if port is None or port == app.port else METRICS_PORT_NAME


def _metrics_ports(app: App) -> list[ContainerPortArgs]:
    port = app.metrics.port
    if port is None or metrics_port_name(app) == PORT_NAME:
        return []
    return [ContainerPortArgs(name=METRICS_PORT_NAME, container_port=port, protocol="TCP")]


def int_or_percent(value: str) -> int | str:
    """`"25%"` stays a percentage; `"2"` must reach Kubernetes as the integer 2."""
    return value if value.endswith("%") else int(value)


def _container(app: App, version: str) -> ContainerArgs:
    resources = app.resources
    return ContainerArgs(
        name=APP_NAME,
        image=f"{app.image}:{version}",
        ports=[
            ContainerPortArgs(name=PORT_NAME, container_port=app.port, protocol="TCP"),
            *_metrics_ports(app),
        ],
        # Readiness asks the health path and takes a slow or overloaded Pod out of rotation
        # within 15 s. Liveness asks only whether the process still accepts connections, and
        # for a minute: a Pod that is merely slow must not be restarted (a restart under load
        # makes the load worse), only one whose server is gone.
        readiness_probe=ProbeArgs(
            http_get=HTTPGetActionArgs(path=app.health_path, port=PORT_NAME),
            period_seconds=5,
            timeout_seconds=2,
            failure_threshold=3,
        ),
        liveness_probe=ProbeArgs(
            tcp_socket=TCPSocketActionArgs(port=PORT_NAME),
            initial_delay_seconds=15,
            period_seconds=10,
            timeout_seconds=5,
            failure_threshold=6,
        ),
        resources=ResourceRequirementsArgs(
            requests={
                "cpu": resources.cpu_request,
                "memory": resources.memory_request,
                "ephemeral-storage": resources.ephemeral_storage_request,
            },
            limits={
                "cpu": resources.cpu_limit,
                "memory": resources.memory_limit,
                "ephemeral-storage": resources.ephemeral_storage_limit,
            },
        ),
        security_context=wire(container_security_context()),
        volume_mounts=wire(writable_mounts(app.security)),
    )


def _spread(selector: dict[str, str]) -> list[TopologySpreadConstraintArgs]:
    """Over zones where the cluster has them, and strictly over nodes.

    Zones are best effort: on-prem nodes may carry no zone label, and a hard zone rule would
    then schedule nothing. Nodes are strict, but cordoned (tainted) nodes are left out of the
    count, or draining a node for an upgrade would block every new Pod. `pod-template-hash`
    spreads the new ReplicaSet on its own during a rollout.
    """
    match = LabelSelectorArgs(match_labels=selector)
    return [
        TopologySpreadConstraintArgs(
            max_skew=1,
            topology_key="topology.kubernetes.io/zone",
            when_unsatisfiable="ScheduleAnyway",
            label_selector=match,
            match_label_keys=["pod-template-hash"],
        ),
        TopologySpreadConstraintArgs(
            max_skew=1,
            topology_key="kubernetes.io/hostname",
            when_unsatisfiable="DoNotSchedule",
            label_selector=match,
            match_label_keys=["pod-template-hash"],
            node_taints_policy="Honor",
        ),
    ]
