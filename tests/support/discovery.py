"""What the self-service twins' tests share: the discovery config, tagged LBs and the last up's
record."""

from __future__ import annotations

import uuid
from typing import Any

from model.config import Discovery
from model.discovery import LastUp, last_up, twins
from model.octavia import TaggedLoadBalancer

DISCOVERY = Discovery.model_validate(
    {"defaults": {"zone": "example.net", "checkPort": 443, "weights": {"octavia": 90, "nlb": 10}}}
)


def tagged(name: str, *tags: str, lb_id: str | None = None) -> TaggedLoadBalancer:
    return TaggedLoadBalancer(lb_id or str(uuid.uuid4()), name, ("hybrid-infra/twin", *tags))


REPORTS = "8a1e5c3b-2d4f-4b6a-9c8d-7e6f5a4b3c21"


def last_run(*lbs: TaggedLoadBalancer, protected: bool = False) -> dict[str, LastUp]:
    """What an `up` over `lbs` leaves, read back as the next run reads it."""
    found, _ = twins(lbs, DISCOVERY, [], protected=protected)
    return last_up(
        {d.spec.name: {"loadbalancerId": d.loadbalancer_id, "tags": d.tags} for d in found}
    )


def allowing(**keys: Any) -> Discovery:
    return DISCOVERY.model_copy(update=keys)
