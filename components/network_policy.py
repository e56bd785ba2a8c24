"""A namespace's NetworkPolicies: what its workload admits, then deny-by-default for the rest.

The allowing policy is created first and the default-deny waits for it: the other order would
cut a running workload off, between the two creates, on the first `up` that adds them. The
specs are `model.network_policy`'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
from pulumi_kubernetes.meta.v1 import ObjectMetaArgs

from components.wire import wire
from model.network_policy import DEFAULT_DENY


def isolate(
    name: str,
    namespace: pulumi.Input[str | None],
    policy: str,
    allowed: Mapping[str, Any],
    labels: Mapping[str, str],
    opts: pulumi.ResourceOptions,
) -> tuple[k8s.networking.v1.NetworkPolicy, k8s.networking.v1.NetworkPolicy]:
    """`policy` (the allowed paths, `allowed`) and `default-deny` in `namespace`, both with
    the workload's `labels`."""
    allow = k8s.networking.v1.NetworkPolicy(
        f"{name}-network-policy",
        metadata=ObjectMetaArgs(name=policy, namespace=namespace, labels=dict(labels)),
        spec=wire(allowed),
        opts=opts,
    )
    deny = k8s.networking.v1.NetworkPolicy(
        f"{name}-default-deny",
        metadata=ObjectMetaArgs(name="default-deny", namespace=namespace, labels=dict(labels)),
        spec=wire(DEFAULT_DENY),
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[allow])),
    )
    return allow, deny
