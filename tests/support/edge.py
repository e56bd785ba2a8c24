"""Helpers the edge proxy's tests share: routing tables on loopback, and a config's servers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st
from pulumi.runtime import rpc

from model.config import ProdSpec

Routes = list[tuple[str, int, int]]


def routing(
    segments: dict[str, Routes],
    fallback: dict[str, Routes] | None = None,
    health_path: str = "/healthz",
) -> dict[str, Any]:
    """{segment: [(prod, port, weight)]} → the routing table's shape (endpoints on loopback)."""

    def routes(of: Routes) -> list[dict[str, Any]]:
        return [
            {"prod": p, "endpoint": f"http://127.0.0.1:{port}", "weight": w} for p, port, w in of
        ]

    return {
        "healthPath": health_path,
        "segments": {
            name: {"routes": routes(of), "fallbacks": routes((fallback or {}).get(name, []))}
            for name, of in segments.items()
        },
    }


def servers_of(config: str) -> dict[str, dict[str, str]]:
    """Backend → server name → its `server` line."""
    found: dict[str, dict[str, str]] = {}
    backend = ""
    for line in config.splitlines():
        if line.startswith("backend "):
            backend = line.split()[1]
        elif line.strip().startswith("server "):
            found.setdefault(backend, {})[line.split()[1]] = line.strip()
    return found


prods = st.dictionaries(
    st.sampled_from([f"P{i}" for i in range(1, 7)]),
    st.builds(ProdSpec, cluster=st.sampled_from(["A", "B", "C"]), capacity=st.integers(100, 5000)),
    min_size=2,
    max_size=6,
)


def with_tls(ca: Any) -> Callable[[dict[str, Any]], None]:
    """The prod stack with `edge.tls.ca` and a TLS address per Prod."""

    def mutate(raw: dict[str, Any]) -> None:
        raw["edge"]["tls"] = {"ca": ca}
        raw["edge"]["addresses"] = {p: f"{p.lower()}.prod.example.net:8443" for p in raw["prods"]}

    return mutate


def secret_value(value: Any) -> Any:
    assert rpc.is_rpc_secret(value), "the CA must reach the engine as a secret"
    return value["value"]
