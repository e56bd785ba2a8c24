"""What this stack exported at its last `up`: the program's memory between runs.

Two things outside the stack can fail while it runs: other teams' tags, which can be wrong at
any moment, and the Octavia API, which can be down. A twin whose tag turns bad keeps what the
last `up` used (`discovered`, `model.discovery`), and a twin whose LB Octavia cannot describe
right now mirrors it as the last `up` read it (`octavia`), so the program needs those outputs
while it decides which resources to declare, as plain values.

It reads it with the engine's own `pulumi:pulumi:readStackOutputs` invoke, the one stack
references use, on this very stack: one call, no resource added, the same answer in `preview`
and `up` (the outputs of the last completed update). A stack that never ran has no outputs,
which means no history, as after lost state; then a bad tag falls back to the stack default,
and an LB with no usable address is skipped, as on a first run. Under Pulumi's mocks (synth,
tests) the invoke answers what the mocks give, so a run can be fed the outputs of an earlier one.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import Any

import pulumi

READ_STACK_OUTPUTS = "pulumi:pulumi:readStackOutputs"


def outputs() -> Mapping[str, Any]:
    """This stack's outputs as its last `up` left them; raises `pulumi.RunError` when the
    backend cannot be read, since without them a bad tag could look like a removed twin."""
    names = [pulumi.get_stack()]
    organization = pulumi.get_organization()
    if organization:
        # Fully qualified first: a bare name means the caller's default organization.
        names.insert(0, f"{organization}/{pulumi.get_project()}/{pulumi.get_stack()}")
    failures = []
    for name in names:
        try:
            result = pulumi.runtime.invoke(READ_STACK_OUTPUTS, {"name": name})
        except Exception as error:  # the engine's errors (gRPC, backend) share no type
            failures.append(f"{name}: {error}")
            continue
        found = (result.value or {}).get("outputs")
        return found if isinstance(found, Mapping) else {}
    raise pulumi.RunError(
        "cannot read this stack's outputs from its last up (" + "; ".join(failures) + "), so "
        "no discovered twin could keep its last values; nothing was changed. Check the "
        "backend (`pulumi stack output`) and run again."
    )


class LastOutputs:
    """The last `up`'s outputs, read on first use and once per run."""

    @cached_property
    def _outputs(self) -> Mapping[str, Any]:
        return outputs()

    def get(self, key: str) -> Any:
        return self._outputs.get(key)
