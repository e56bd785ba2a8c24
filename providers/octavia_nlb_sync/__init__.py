"""Octavia → NLB target sync: a pure planner (`planner`), thin I/O shells (`octavia`,
`elbv2`) and the dynamic provider that runs them on every `pulumi up` (`provider`)."""

from providers.octavia_nlb_sync.planner import SyncRefused
from providers.octavia_nlb_sync.provider import (
    PROVIDER_VERSION,
    OctaviaNlbSync,
    OctaviaNlbSyncProvider,
)

__all__ = ["PROVIDER_VERSION", "OctaviaNlbSync", "OctaviaNlbSyncProvider", "SyncRefused"]
