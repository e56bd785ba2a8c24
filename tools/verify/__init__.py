"""`python -m tools.verify --stack S`: after a deploy, check the live platform against what the
stack exported, read-only, with the stack's own credentials.

Areas, one module each, each a pure judge of plain answers plus the thin reads behind them:
`dns` (weighted records and Route53 health checks), `nlb` (target groups against Octavia, by
the sync's own planner; target health), `clusters` (APIs answer; each Prod's Deployment at its
release version, with PDB and HPA), `routing` (each segment through each edge proxy reaches a
Prod the routing table names), `alerts` (each Prod's rules loaded, with samples). `runner`
runs them at once; `report` renders the rows.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence

from tools.verify import alerts, clusters, dns, nlb, routing, runner
from tools.verify.context import Context
from tools.verify.report import Redactor, Row
from tools.verify.runner import Probe

AREAS: Mapping[str, Callable[[Context], list[Probe]]] = {
    "dns": dns.probes,
    "nlb": nlb.probes,
    "clusters": clusters.probes,
    "routing": routing.probes,
    "alerts": alerts.probes,
}


def verify(
    ctx: Context,
    areas: Collection[str] = tuple(AREAS),
    workers: int = runner.WORKERS,
    progress: runner.Progress | None = None,
) -> list[Row]:
    """The outputs' problems, then every area's rows, with every known secret redacted."""
    probes = [probe for area in AREAS if area in areas for probe in AREAS[area](ctx)]
    redact = Redactor([*ctx.outputs.secrets(), *filter(None, [ctx.os_password])])
    say = (lambda line: progress(redact(line))) if progress is not None else None
    problems = ctx.outputs.problems_of(areas)
    rows: Sequence[Row] = [*problems, *runner.run(probes, workers, say)]
    return [redact.row(row) for row in rows]
