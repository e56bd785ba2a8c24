"""Every rule that spans keys of a stack file, each problem with its key path (pure).

`model.stack.parse` runs all of them on every read (the program, synth, the release tools), so
no caller can forget one. Rules that Octavia, AWS or GKE would otherwise enforce only when the
API is called are stated here, at config time; docs/cloud-rules.md lists their sources.
Rules that depend on the calendar (a Kubernetes minor's end of support) take the day as an
input, so a test can fix it.

One module a concern, each with `problems(config, today)`: a new rule goes into the module of
the keys it reads (`stack`, `load_balancers`, `clusters`, `prods`, `edge`), as a private
function named for what it checks, and `problems` of that module calls it.
"""

from __future__ import annotations

from datetime import date

from model import fleet, kubernetes_versions
from model.config import StackConfig
from model.rules import clusters, edge, load_balancers, prods, stack

CONCERNS = (stack, load_balancers, clusters, prods, edge)


def problems(config: StackConfig, today: date) -> list[str]:
    """Every rule across keys, on `today`; an empty list means the stack may be built."""
    return [problem for concern in CONCERNS for problem in concern.problems(config, today)]


def warnings(config: StackConfig, today: date) -> list[str]:
    """What may be built but needs attention soon, with key paths; the program logs each."""
    return list(kubernetes_versions.check(fleet.clusters(config), today).warnings)
