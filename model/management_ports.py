"""Management ports: remote administration, data stores, the Kubernetes control plane and the
OpenStack APIs. No NLB twin carries one (pure).

The list, with the source of each group, is `policy/management-ports.json`: the policy pack
reads the same file to refuse any rule that opens one of these ports to the world, and a
published pack can carry nothing of the project but its own directory. The program refuses
them on every twin: `model.rules` for the listeners and members a stack file declares,
`model.nlb_mapping.without_management_ports` for the listeners read from Octavia.
docs/cloud-rules.md ("Self-service fence and policy pack") lists the rules and sources.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from model.stackfile import ROOT

LIST = ROOT / "policy" / "management-ports.json"

MANAGEMENT_PORTS: Mapping[int, str] = {
    int(port): name
    for group in json.loads(LIST.read_text())["groups"]
    for port, name in group["ports"].items()
}


def management_port(port: int) -> str | None:
    """`6443 (Kubernetes API)` for a management port, None for any other."""
    name = MANAGEMENT_PORTS.get(port)
    return None if name is None else f"{port} ({name})"
