"""A recorded Octavia catalog with a listener added, for the program's adopt and discovery tests."""

import json
from pathlib import Path

from tests.support.synthesis import (
    HYBRID_LB,
    descendants,
    one,
)
from tools.synth import Synthesis
from tools.synth.synthesis import OCTAVIA_CATALOG


def below_hlb(result: Synthesis, name: str) -> Synthesis:
    """Everything the hybrid LB `name` declared, at any depth."""
    return descendants(result, one(result.of_type(HYBRID_LB), name))


def catalog_with_listener(
    tmp_path: Path, name: str, port: int, member_port: int = 8443, tags: list[str] | None = None
) -> Path:
    """The recorded catalog with one more TCP listener on `name`, its members on `member_port`
    (and `name`'s tags replaced by `tags`, if given)."""
    entries = json.loads(OCTAVIA_CATALOG.read_text())
    (lb,) = [e for e in entries.values() if e["name"] == name]
    pool = "5c1f0e2d-3b4a-4c5d-8e6f-7a8b9c0d1e2f"
    lb["listeners"].append(
        {
            "id": "4b0e9d1c-2a3f-4b4c-9d5e-6f7a8b9c0d1e",
            "name": f"port-{port}",
            "protocol": "TCP",
            "protocol_port": port,
            "default_pool_id": pool,
        }
    )
    lb["pools"].append(
        {
            "id": pool,
            "protocol": "TCP",
            "lb_algorithm": "ROUND_ROBIN",
            "member_ports": [member_port],
        }
    )
    if tags is not None:
        lb["tags"] = tags
    path = tmp_path / "octavia-catalog.json"
    path.write_text(json.dumps(entries))
    return path
