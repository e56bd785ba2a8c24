"""An on-prem Kubernetes cluster: OpenStack Magnum, through the platform's openstack provider."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import pulumi
import pulumi_kubernetes as k8s
import pulumi_openstack as openstack

from model.config import OnPremClusterSpec, OnPremConfig
from model.kubeconfig import magnum_kubeconfig


@dataclass(frozen=True)
class OnPremClusterArgs:
    spec: OnPremClusterSpec
    on_prem: OnPremConfig


class OnPremCluster(pulumi.ComponentResource):
    """A Magnum template + cluster, its kubeconfig (secret) and a Kubernetes provider for it.

    The openstack provider comes from the parent's `providers` (the platform's explicit one), so
    nothing here talks to a default provider.
    """

    kind: ClassVar[Literal["onprem"]] = "onprem"
    endpoint: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]

    def __init__(
        self, name: str, args: OnPremClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("hybrid-infra:clusters:OnPremCluster", name, None, opts)
        spec = args.spec
        # Templates are immutable: Magnum refuses to update a template a cluster uses. A new
        # version, image or flavor is a new template under a new name (the old one stays with
        # the cluster that uses it until that cluster is removed); never protected, so removing
        # a cluster can take its template with it.
        template_args = template_spec(spec, args.on_prem)
        template_name = f"{name}-{template_version(template_args)}"
        self.template = openstack.containerinfra.ClusterTemplate(
            f"{name}-template-{template_version(template_args)}",
            name=template_name,
            **template_args,
            opts=pulumi.ResourceOptions(parent=self, protect=False),
        )
        self.cluster = openstack.containerinfra.Cluster(
            name,
            cluster_template_id=self.template.id,
            master_count=spec.master_count,
            master_flavor=spec.master_flavor,
            flavor=spec.flavor,
            node_count=spec.node_count,
            keypair=spec.keypair,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.endpoint = self.cluster.api_address
        self.kubeconfig = pulumi.Output.secret(self.cluster.kubeconfig.apply(magnum_kubeconfig))
        self.provider = k8s.Provider(
            f"{name}-kubernetes",
            kubeconfig=self.kubeconfig,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"endpoint": self.endpoint, "kubeconfig": self.kubeconfig})


def template_spec(spec: OnPremClusterSpec, on_prem: OnPremConfig) -> dict[str, Any]:
    """Everything a template fixes; any change to it is a new template."""
    return {
        "coe": "kubernetes",
        "image": spec.template_image,
        "flavor": spec.flavor,
        "master_flavor": spec.master_flavor,
        "external_network_id": (
            str(on_prem.external_network_id) if on_prem.external_network_id else None
        ),
        "network_driver": "calico",
        "docker_storage_driver": "overlay2",
        "master_lb_enabled": spec.master_count > 1,
        # Reached over Direct Connect from the VPC, so no floating IPs on the nodes.
        "floating_ip_enabled": False,
        "labels": magnum_labels(spec),
    }


def template_version(template: Mapping[str, Any]) -> str:
    """`v1-30-1a2b3c`: the Kubernetes version to read, a hash of the rest to be unique."""
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:6]
    return f"{template['labels']['kube_tag'].rsplit('.', 1)[0].replace('.', '-')}-{digest}"


def magnum_labels(spec: OnPremClusterSpec) -> dict[str, str]:
    """Template labels. The config pins the Kubernetes minor only, so the `.0` patch is used."""
    return {
        "kube_tag": f"v{spec.kubernetes_version}.0",
        "auto_healing_enabled": "true",
    }
