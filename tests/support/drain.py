"""What the node-pool drain's tests share: a clock that advances only when the drain sleeps, and
the provider's properties."""

from __future__ import annotations

from hypothesis import strategies as st

from providers.node_pool_drain.planner import (
    Node,
)
from providers.node_pool_drain.provider import (
    PROVIDER_VERSION,
)

nodes = st.lists(
    st.builds(
        Node,
        name=st.builds(lambda n: f"node-{n}", st.integers(0, 20)),
        ready=st.booleans(),
        unschedulable=st.booleans(),
    ),
    unique_by=lambda n: n.name,
    max_size=12,
)


OLD, NEW = "g-1-30-5-gke-1014-r42", "g-1-30-6-gke-1100-r43"


class FakeClock:
    """Time that passes only when the code under test sleeps: a timeout in a few requests."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.001)


def props(kubeconfig: str, **overrides: object) -> dict[str, object]:
    return {
        "pool_name": OLD,
        "kubeconfig": kubeconfig,
        "min_ready_nodes": 2,
        "ready_timeout_seconds": 30,
        "drain_timeout_seconds": 30,
        "poll_seconds": 0.05,
        "backoff_base_seconds": 0.05,
        "backoff_cap_seconds": 0.2,
        "node_label": "cloud.google.com/gke-nodepool",
        "provider_version": PROVIDER_VERSION,
        **overrides,
    }
