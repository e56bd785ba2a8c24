"""Which Prods other clusters reach, and how their load balancers stay internal (pure).

A proxy reaches a Prod on another cluster through an internal L4 load balancer: the Prod's
Service becomes type `LoadBalancer` (`reached_from_other_clusters` says for which Prods). Every
cloud makes a `LoadBalancer` Service public unless an annotation that only its own
controller reads says otherwise, so the annotations depend on the cluster's kind:

- **EKS**: the AWS Load Balancer Controller reads `aws-load-balancer-scheme` (its default is
  already internal); without that controller, the cloud provider's own service controller
  handles the Service and reads only the older `aws-load-balancer-internal`. Both are set, so the
  Service is internal whichever controller the cluster runs. An internet-facing one names its
  scheme, because the Load Balancer Controller's default is internal.
- **GKE**: `networking.gke.io/load-balancer-type: Internal` makes an internal passthrough Network
  Load Balancer. It is regional: global access lets clients in other regions, such as networks
  joined through an Interconnect or VPN attached elsewhere, reach it too.
- **On-prem (Magnum)**: the OpenStack cloud controller manager leaves the Octavia VIP without a
  floating IP when `openstack-internal-load-balancer` is true.

docs/cloud-rules.md gives the source of each.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from model.config import StackConfig
from model.fleet import ClusterKind

Scheme = Literal["internal", "internet-facing"]

LOAD_BALANCER_ANNOTATIONS: Mapping[ClusterKind, Mapping[Scheme, Mapping[str, str]]] = {
    "eks": {
        "internal": {
            "service.beta.kubernetes.io/aws-load-balancer-scheme": "internal",
            "service.beta.kubernetes.io/aws-load-balancer-internal": "true",
        },
        "internet-facing": {
            "service.beta.kubernetes.io/aws-load-balancer-scheme": "internet-facing",
        },
    },
    "gke": {
        "internal": {
            "networking.gke.io/load-balancer-type": "Internal",
            "networking.gke.io/internal-load-balancer-allow-global-access": "true",
        },
        "internet-facing": {},
    },
    "onprem": {
        "internal": {"service.beta.kubernetes.io/openstack-internal-load-balancer": "true"},
        "internet-facing": {"service.beta.kubernetes.io/openstack-internal-load-balancer": "false"},
    },
    # An existing cluster of no stated cloud: its own load-balancer controller decides.
    "existing": {"internal": {}, "internet-facing": {}},
}


def load_balancer_annotations(kind: ClusterKind, scheme: Scheme = "internal") -> dict[str, str]:
    """The Service annotations that give a cluster of `kind` a load balancer of `scheme`."""
    return dict(LOAD_BALANCER_ANNOTATIONS[kind][scheme])


def reached_from_other_clusters(config: StackConfig) -> frozenset[str]:
    """The Prods a proxy on another cluster may route to: all of them, once Prods run on more
    than one cluster.

    Every proxy routes every segment, so each Prod that serves a segment is reached from the
    other clusters, and so is any non-test Prod a drain may re-place a segment on. Test Prods
    without a segment are included too: the set must not follow the segments, or a rollback (a
    segment edit that takes seconds) would delete and create load balancers (minutes), and a
    drain would take a drained cluster's Prods off theirs, a write to that cluster.
    """
    if len({p.cluster for p in config.prods.values()}) < 2:
        return frozenset()
    return frozenset(config.prods)
