"""The stack as a whole: the clouds it uses are configured, and its tags are complete."""

from __future__ import annotations

from datetime import date

from model import fleet
from model.config import StackConfig
from model.stackfile import PROJECT

REQUIRED_TAGS = ("owner", "cost-center", "environment")


def problems(config: StackConfig, today: date) -> list[str]:
    found = _clouds_configured(config)
    found += [
        f"{PROJECT}:tags.{tag}: required tag is missing"
        for tag in REQUIRED_TAGS
        if tag not in config.tags
    ]
    return found


def _clouds_configured(config: StackConfig) -> list[str]:
    """`aws` and `onPrem` are needed by what uses those clouds, and only then: a stack of
    existing clusters alone names neither."""
    kinds = {c.kind for c in fleet.clusters(config).values()}
    lbs = bool(config.load_balancers) or config.discovery is not None
    needs = {
        "aws": (config.aws, lbs or "eks" in kinds),
        "onPrem": (config.on_prem, lbs or "onprem" in kinds or "eks" in kinds),
    }
    return [
        f"{PROJECT}:{key}: required key is missing (load balancers, discovery and "
        f"{'EKS' if key == 'aws' else 'on-prem and EKS'} clusters need it)"
        for key, (value, needed) in needs.items()
        if needed and value is None
    ]
