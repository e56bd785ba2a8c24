"""Kubeconfigs for the fleet's clusters, rendered from plain values; no I/O here.

EKS and GKE kubeconfigs carry no credential at all: they name an exec plugin (`aws eks
get-token`, `gke-gcloud-auth-plugin`) that mints a short-lived token from whoever runs Pulumi.
They are still handled as secrets everywhere, because they name endpoints and CAs and because
a Magnum kubeconfig does embed a client key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import yaml

EXEC_API = "client.authentication.k8s.io/v1beta1"


def exec_kubeconfig(
    *,
    context: str,
    server: str,
    ca_data: str,
    command: str,
    args: Sequence[str],
    install_hint: str,
    provide_cluster_info: bool = False,
) -> str:
    """A single-context kubeconfig whose user runs `command` to get a token."""
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": context, "cluster": {"server": server, "certificate-authority-data": ca_data}}
        ],
        "users": [
            {
                "name": context,
                "user": {
                    "exec": {
                        "apiVersion": EXEC_API,
                        "command": command,
                        "args": list(args),
                        "interactiveMode": "Never",
                        "installHint": install_hint,
                        "provideClusterInfo": provide_cluster_info,
                    }
                },
            }
        ],
        "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
        "current-context": context,
    }
    return yaml.safe_dump(document, sort_keys=False)


def eks_kubeconfig(*, cluster_name: str, endpoint: str, ca_data: str, region: str) -> str:
    """What `aws eks update-kubeconfig` writes: a token from `aws eks get-token` per call."""
    return exec_kubeconfig(
        context=cluster_name,
        server=endpoint,
        ca_data=ca_data,
        command="aws",
        args=["eks", "get-token", "--cluster-name", cluster_name, "--region", region],
        install_hint="Install the AWS CLI v2 and sign in (aws sso login / AWS_* variables).",
    )


def gke_kubeconfig(*, context: str, endpoint: str, ca_data: str) -> str:
    """GKE hands out a bare IP as endpoint; the plugin turns gcloud credentials into tokens."""
    server = endpoint if endpoint.startswith("https://") else f"https://{endpoint}"
    return exec_kubeconfig(
        context=context,
        server=server,
        ca_data=ca_data,
        command="gke-gcloud-auth-plugin",
        args=[],
        install_hint="Install gke-gcloud-auth-plugin (gcloud components install "
        "gke-gcloud-auth-plugin) and run gcloud auth login.",
        provide_cluster_info=True,
    )


def magnum_kubeconfig(kubeconfig: Mapping[str, Any] | None) -> str:
    """Magnum's provider returns the whole kubeconfig (with a client certificate) as raw_config.

    Empty until the cluster exists; a plan under mocks never fills it.
    """
    return str((kubeconfig or {}).get("raw_config") or "")
