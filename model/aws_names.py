"""Names AWS accepts, derived from the stack's names: short, stable, and unchanged when they fit.

AWS limits (sources in docs/cloud-rules.md):
- load balancer and target group names: at most 32 characters of [A-Za-z0-9-], not starting or
  ending with a hyphen (ELBv2 CreateLoadBalancer / CreateTargetGroup). Pulumi's autonaming adds
  `-` and 7 random characters to the logical name, so logical names get at most 24;
- a Route53 health check's CallerReference: at most 64 characters. The AWS provider builds it as
  `<reference_name>-<36-character unique id>`, so `reference_name` gets at most 27.

A name that already fits is returned as it is, so no resource is renamed (and replaced) by this;
a longer one keeps its readable start and gains a hash of the whole name, which keeps it unique.
"""

from __future__ import annotations

import hashlib
import re

AUTONAMED_ELB_NAME = 32 - len("-1234567")
HEALTH_CHECK_REFERENCE = 64 - len("-terraform-20260101000000000000000001")
_INVALID = re.compile(r"[^a-z0-9-]+")
_DIGEST = 6


def aws_name(name: str, limit: int) -> str:
    """`name` if AWS takes it within `limit`, else a shortened `<start>-<hash>` that it takes."""
    if len(name) <= limit and _valid(name):
        return name
    start = _INVALID.sub("-", name.lower()).strip("-")[: limit - _DIGEST - 1].strip("-")
    digest = hashlib.sha256(name.encode()).hexdigest()[:_DIGEST]
    return f"{start}-{digest}" if start else digest


def _valid(name: str) -> bool:
    return (
        bool(name)
        and not _INVALID.search(name)
        and not name.startswith("-")
        and not name.endswith("-")
    )
