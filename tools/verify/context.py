"""What every probe works with: the outputs, the run's shared reads and meter, and the options
that say where the things outside the outputs are (Prometheus, edge proxies reached another way).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from tools.verify.outputs import Outputs
from tools.verify.runner import Meter, Shared

HTTP_TIMEOUT = 10.0


@dataclass(frozen=True)
class Context:
    outputs: Outputs
    meter: Meter = field(default_factory=Meter)
    shared: Shared = field(default_factory=Shared)
    os_password: str | None = field(default=None, repr=False)
    """The stack's `openstack:password`, over the clouds.yaml entry's own (as the sync uses it)."""
    prometheus: tuple[str, ...] = ()
    edges: Mapping[str, str] = field(default_factory=dict)
    """Cluster → the edge proxy's base URL, where it is reached otherwise than at its Service's
    load balancer (from on-prem through another name, or a local run)."""
    timeout: float = HTTP_TIMEOUT
