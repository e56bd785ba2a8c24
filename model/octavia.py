"""What the platform knows of an Octavia load balancer: its listeners, pools and monitors.

The shapes only: the sync provider reads them from the Octavia API
(`providers/octavia_nlb_sync/octavia.py`), the synth tool from a catalog file, and the NLB
mapping and discovery turn them into a twin.
"""

from __future__ import annotations

from dataclasses import dataclass

CATALOG_ENV = "HYBRID_INFRA_OCTAVIA_CATALOG"
"""Names a JSON file of recorded LBs (these shapes, keyed by LB UUID) read instead of Octavia."""


@dataclass(frozen=True, slots=True)
class Monitor:
    type: str
    delay: int
    timeout: int
    max_retries: int
    max_retries_down: int
    url_path: str | None = None
    expected_codes: str | None = None


@dataclass(frozen=True, slots=True)
class Pool:
    id: str
    protocol: str
    lb_algorithm: str
    monitor: Monitor | None
    member_ports: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Listener:
    id: str
    name: str
    protocol: str
    protocol_port: int
    default_pool_id: str | None


@dataclass(frozen=True, slots=True)
class TaggedLoadBalancer:
    """An LB as the tag listing shows it: enough to decide whether and how to twin it."""

    id: str
    name: str
    tags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class LoadBalancer:
    """What the NLB twin mirrors of an Octavia LB."""

    id: str
    name: str
    vip_address: str
    provisioning_status: str
    listeners: tuple[Listener, ...]
    pools: tuple[Pool, ...]
