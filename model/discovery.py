"""Self-service twins: an Octavia LB tagged `hybrid-infra/twin` is built as an adopt-mode entry
of `loadBalancers` would be, from its tags and the stack's discovery defaults. Pure: the listing
comes in (`octavia.list_tagged`), the specs and the skipped LBs with their reasons go out.

Tags a service team sets (`openstack loadbalancer set --tag KEY=VALUE <lb>`):

| tag | meaning | default |
| --- | --- | --- |
| `hybrid-infra/twin` | give this LB a twin (the marker; `discovery.tag`) | required |
| `hybrid-infra/address=IP` | the VIP's public (floating) address for the record | required |
| `hybrid-infra/record=LABEL` | the DNS label | the LB's name |
| `hybrid-infra/zone=ZONE` | the Route53 zone | `defaults.zone` |
| `hybrid-infra/weights=O-N` | Octavia and NLB weights, e.g. `90-10` | `defaults.weights` |
| `hybrid-infra/check-port=PORT` | the port Route53 checks | `defaults.checkPort` |

A tag that cannot be used skips that LB (with its id, name and the reason), never the stack.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from model.config import Discovery, LoadBalancer
from model.octavia import TaggedLoadBalancer

PREFIX = "hybrid-infra/"
KEYS = ("address", "record", "zone", "weights", "check-port")


@dataclass(frozen=True, slots=True)
class Discovered:
    loadbalancer_id: str
    spec: LoadBalancer
    tags: dict[str, str]
    """The tag values used (for the stack outputs)."""


@dataclass(frozen=True, slots=True)
class Skipped:
    loadbalancer_id: str
    name: str
    reason: str

    def message(self) -> str:
        return (
            f"tagged Octavia LB {self.name or '(no name)'} ({self.loadbalancer_id}): {self.reason}"
        )


def twins(
    tagged: Iterable[TaggedLoadBalancer], discovery: Discovery, declared_ids: Iterable[str]
) -> tuple[list[Discovered], list[Skipped]]:
    """Specs for the tagged LBs; the ones the stack file lists are skipped (it wins)."""
    declared = {str(i) for i in declared_ids}
    found: list[Discovered] = []
    skipped: list[Skipped] = []
    names: set[str] = set()
    for lb in tagged:
        if lb.id in declared:
            skipped.append(
                Skipped(lb.id, lb.name, "also listed in loadBalancers; built from there")
            )
            continue
        tags = _values(lb.tags)
        try:
            spec = LoadBalancer.model_validate(_entry(lb, tags, discovery))
        except (ValidationError, ValueError) as error:
            skipped.append(Skipped(lb.id, lb.name, _reason(error)))
            continue
        if spec.name in names:
            skipped.append(Skipped(lb.id, lb.name, f"another tagged LB is named {spec.name}"))
            continue
        names.add(spec.name)
        found.append(Discovered(lb.id, spec, tags))
    return found, skipped


def _values(tags: Iterable[str]) -> dict[str, str]:
    values = {}
    for tag in tags:
        key, sep, value = tag.removeprefix(PREFIX).partition("=")
        if tag.startswith(PREFIX) and sep and key in KEYS:
            values[key] = value
    return values


def _entry(lb: TaggedLoadBalancer, tags: Mapping[str, str], discovery: Discovery) -> dict[str, Any]:
    """The `loadBalancers` entry the tags stand for, in the stack file's own shape."""
    defaults = discovery.defaults
    if "address" not in tags:
        raise ValueError(
            f"no {PREFIX}address=<public IP> tag: Route53 needs the VIP's floating address"
        )
    weights = defaults.weights.model_dump(by_alias=True)
    if "weights" in tags:
        octavia, sep, nlb = tags["weights"].partition("-")
        if not (sep and octavia.isdigit() and nlb.isdigit()):
            raise ValueError(
                f"{PREFIX}weights={tags['weights']}: write it as OCTAVIA-NLB, e.g. 90-10"
            )
        weights = {"octavia": int(octavia), "nlb": int(nlb)}
    port = tags.get("check-port", defaults.check_port)
    if port is None:
        raise ValueError(f"no {PREFIX}check-port=<port> tag and no discovery.defaults.checkPort")
    return {
        "name": lb.name,
        "adopt": {"loadbalancerId": lb.id},
        "nlb": defaults.nlb.model_dump(by_alias=True),
        "dns": {
            "zone": tags.get("zone", defaults.zone),
            "record": tags.get("record", lb.name),
            "ttl": defaults.ttl,
            "weights": weights,
            "octaviaAddress": tags["address"],
            "healthCheck": {"protocol": defaults.health_check, "port": port},
        },
    }


def _reason(error: Exception) -> str:
    if isinstance(error, ValidationError):
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return f"{where}: {first['msg']} (from its tags)"
    return str(error)
