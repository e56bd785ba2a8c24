"""Where the program learns the shape of an adopted Octavia LB.

Live, it reads the Octavia API (the same read code as the sync). For reviews and CI without
OpenStack credentials, `HYBRID_INFRA_OCTAVIA_CATALOG` names a JSON file of recorded
descriptions keyed by LB UUID (the `model.octavia.LoadBalancer` fields); the synth tool uses
`devenv/octavia-catalog.json`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

from model import octavia as shapes
from model.octavia import CATALOG_ENV
from providers.octavia_nlb_sync import octavia

T = TypeVar("T")


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


class Reads:
    """One run's reads of Octavia. Once one goes unanswered, the rest fail at once with the same
    error instead of each waiting out its own timeout (30 s a call when Octavia hangs)."""

    def __init__(self, cloud: str | None, password: str | None = None) -> None:
        self.cloud = cloud
        self.password = password
        self.down: octavia.OctaviaUnavailable | None = None

    def describe(self, loadbalancer_id: str) -> shapes.LoadBalancer:
        return self._read(describe, loadbalancer_id)

    def discover(self, tag: str) -> list[shapes.TaggedLoadBalancer]:
        return self._read(discover, tag)

    def _read(self, read: Callable[[str, str | None, str | None], T], subject: str) -> T:
        if self.down is not None:
            raise self.down
        try:
            return read(subject, self.cloud, self.password)
        except octavia.OctaviaUnavailable as error:
            self.down = error
            raise


def _from_catalog(path: Path, loadbalancer_id: str) -> shapes.LoadBalancer:
    entries = json.loads(path.read_text())
    if loadbalancer_id not in entries:
        raise octavia.OctaviaNotFound(
            "load balancer",
            loadbalancer_id,
            f"no load balancer {loadbalancer_id} in the recorded catalog {path}; "
            f"unset {CATALOG_ENV} to read Octavia live, or record it there",
        )
    return from_entry(entries[loadbalancer_id])


def entry_of(lb: shapes.LoadBalancer) -> dict[str, Any]:
    """The LB as a recorded catalog entry (plain JSON), for the stack outputs."""
    return dict(json.loads(json.dumps(asdict(lb))))


def from_entry(entry: Any) -> shapes.LoadBalancer:
    """A recorded entry (the catalog's, or the `octavia` output of the last up) as the shape.
    Numbers are made ints again: outputs come back from the engine as doubles, and a key whose
    value was None (a listener with no default pool) comes back absent."""
    return shapes.LoadBalancer(
        id=entry["id"],
        name=entry["name"],
        vip_address=entry["vip_address"],
        provisioning_status=entry.get("provisioning_status", "ACTIVE"),
        listeners=tuple(
            shapes.Listener(
                id=li["id"],
                name=li["name"],
                protocol=li["protocol"],
                protocol_port=int(li["protocol_port"]),
                default_pool_id=li.get("default_pool_id"),
            )
            for li in entry["listeners"]
        ),
        pools=tuple(
            shapes.Pool(
                id=p["id"],
                protocol=p["protocol"],
                lb_algorithm=p["lb_algorithm"],
                monitor=_monitor(p["monitor"]) if p.get("monitor") else None,
                member_ports=tuple(int(port) for port in p.get("member_ports", ())),
            )
            for p in entry["pools"]
        ),
    )


def _monitor(raw: dict[str, Any]) -> shapes.Monitor:
    return shapes.Monitor(
        type=raw["type"],
        delay=int(raw["delay"]),
        timeout=int(raw["timeout"]),
        max_retries=int(raw["max_retries"]),
        max_retries_down=int(raw["max_retries_down"]),
        url_path=raw.get("url_path"),
        expected_codes=raw.get("expected_codes"),
    )
