"""Octavia → NLB target sync, one role a module: the inputs typed and checked (`spec`), the
decisions on plain data (`planner`), the reads and writes (`octavia`, `elbv2`), the read → plan
→ apply run (`sync`) and the dynamic provider the engine calls on every `pulumi up`
(`provider`)."""

from providers.octavia_nlb_sync.planner import SyncRefused
from providers.octavia_nlb_sync.provider import (
    PROVIDER_VERSION,
    OctaviaNlbSync,
    OctaviaNlbSyncProvider,
)

__all__ = ["PROVIDER_VERSION", "OctaviaNlbSync", "OctaviaNlbSyncProvider", "SyncRefused"]
