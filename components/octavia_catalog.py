"""Where the program learns the shape of an adopted Octavia LB.

Live, it reads the Octavia API (the same read code as the sync). For reviews and CI without
OpenStack credentials, `HYBRID_INFRA_OCTAVIA_CATALOG` names a JSON file of recorded
descriptions keyed by LB UUID (the `model.octavia.LoadBalancer` fields); the synth tool uses
`devenv/octavia-catalog.json`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from model import octavia as shapes
from model.octavia import CATALOG_ENV
from providers.octavia_nlb_sync import octavia


def describe(
    loadbalancer_id: str, cloud: str | None, password: str | None = None
) -> shapes.LoadBalancer:
    """The LB's listeners, pools and monitors. Raises `OctaviaNotFound` for an id Octavia (or the
    recorded catalog) does not know, `OctaviaUnavailable` when Octavia does not answer."""
    recorded = os.environ.get(CATALOG_ENV)
    if recorded:
        return _from_catalog(Path(recorded), loadbalancer_id)
    return octavia.read_loadbalancer(octavia.connect(cloud, password), loadbalancer_id)


def discover(
    tag: str, cloud: str | None, password: str | None = None
) -> list[shapes.TaggedLoadBalancer]:
    """The LBs carrying `tag`: one list call live, or the recorded entries' `tags`."""
    recorded = os.environ.get(CATALOG_ENV)
    if recorded:
        entries = json.loads(Path(recorded).read_text()).values()
        return sorted(
            (
                shapes.TaggedLoadBalancer(e["id"], e["name"], tuple(e.get("tags", ())))
                for e in entries
                if tag in e.get("tags", ())
            ),
            key=lambda lb: (lb.name, lb.id),
        )
    return octavia.list_tagged(octavia.connect(cloud, password), tag)


def _from_catalog(path: Path, loadbalancer_id: str) -> shapes.LoadBalancer:
    entries = json.loads(path.read_text())
    if loadbalancer_id not in entries:
        raise octavia.OctaviaNotFound(
            "load balancer",
            loadbalancer_id,
            f"no load balancer {loadbalancer_id} in the recorded catalog {path}; "
            f"unset {CATALOG_ENV} to read Octavia live, or record it there",
        )
    return _load_balancer(entries[loadbalancer_id])


def _load_balancer(entry: dict[str, Any]) -> shapes.LoadBalancer:
    return shapes.LoadBalancer(
        id=entry["id"],
        name=entry["name"],
        vip_address=entry["vip_address"],
        provisioning_status=entry.get("provisioning_status", "ACTIVE"),
        listeners=tuple(shapes.Listener(**li) for li in entry["listeners"]),
        pools=tuple(
            shapes.Pool(
                id=p["id"],
                protocol=p["protocol"],
                lb_algorithm=p["lb_algorithm"],
                monitor=shapes.Monitor(**p["monitor"]) if p.get("monitor") else None,
                member_ports=tuple(p.get("member_ports", ())),
            )
            for p in entry["pools"]
        ),
    )
