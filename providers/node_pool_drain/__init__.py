"""Node-pool drain: a pure planner (`planner`), a thin Kubernetes shell (`kube`), the poll loop
of its waits (`wait`) and the dynamic provider that waits for a new pool's nodes and drains an
old pool before it is deleted (`provider`)."""

from providers.node_pool_drain.kube import KubeUnavailable
from providers.node_pool_drain.provider import (
    PROVIDER_VERSION,
    DrainTimedOut,
    NodePoolDrain,
    NodePoolDrainProvider,
    NodesNotReady,
)

__all__ = [
    "PROVIDER_VERSION",
    "DrainTimedOut",
    "KubeUnavailable",
    "NodePoolDrain",
    "NodePoolDrainProvider",
    "NodesNotReady",
]
