"""API calls counted by kind, on the clients the provider itself uses, and a measured phase's
calls and times; shared by the sync benches and the discovery bench."""

from __future__ import annotations

import contextlib
import re
import statistics
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

UUID = re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}", re.I)

# Short names for the call kinds in the table; anything else is shown in full.
KIND_ALIASES = {
    "os GET /": "disc",
    "os GET /lbaas/loadbalancers/{id}": "lb",
    "os GET /lbaas/pools/{id}/members": "mem",
    "elbv2 DescribeTargetHealth": "DTH",
    "elbv2 RegisterTargets": "Reg",
    "elbv2 DeregisterTargets": "Dereg",
}
ELBV2_WRITES = {"RegisterTargets", "DeregisterTargets"}


class CallCounter:
    """Counts API calls by kind while a window is open; setup traffic outside it is ignored.

    Octavia is counted on keystoneauth's `Session.request` (every openstacksdk request, version
    discovery included, goes through it); ELBv2 on each client's `provide-client-params` event.
    Both hooks stay installed for the whole run, so synced and bare reads pay the same for them.
    """

    def __init__(self) -> None:
        self._current: Counter[str] | None = None
        self._lock = threading.Lock()  # a sync reads from several threads at once

    @contextlib.contextmanager
    def window(self) -> Iterator[Counter[str]]:
        counts: Counter[str] = Counter()
        self._current = counts
        try:
            yield counts
        finally:
            self._current = None

    def add(self, kind: str) -> None:
        with self._lock:
            if self._current is not None:
                self._current[kind] += 1

    @contextlib.contextmanager
    def hooked(self) -> Iterator[None]:
        """Patch the keystoneauth session and the provider's ELBv2 client factory; undo after."""
        from keystoneauth1 import session as ks_session

        from providers.octavia_nlb_sync import elbv2 as elbv2_shell

        real_request = ks_session.Session.request
        real_client = elbv2_shell.client

        def request(session: Any, url: str, method: str, *args: Any, **kwargs: Any) -> Any:
            self.add(octavia_kind(method, url, kwargs.get("params")))
            return real_request(session, url, method, *args, **kwargs)

        hooked: set[int] = set()

        def client(region: str | None = None) -> Any:
            made = real_client(region)
            if id(made) not in hooked:  # the provider reuses its clients: hook each once
                hooked.add(id(made))
                made.meta.events.register(
                    "provide-client-params.elastic-load-balancing-v2.*",
                    lambda model, **_: self.add(f"elbv2 {model.name}"),
                )
            return made

        ks_session.Session.request = request  # type: ignore[method-assign]
        elbv2_shell.client = client
        try:
            yield
        finally:
            ks_session.Session.request = real_request  # type: ignore[method-assign]
            elbv2_shell.client = real_client


def octavia_kind(method: str, url: str, params: Any) -> str:
    """`GET /lbaas/pools/{id}/members?marker`: method, path with IDs folded, query keys."""
    parts = urlsplit(url)
    path = "/" + (parts.path if "://" in url else url.split("?", 1)[0]).strip("/")
    path = path.removeprefix("/v2").removeprefix("/v2.0") or "/"
    path = UUID.sub("{id}", path)
    keys = sorted({*parse_qs(parts.query), *(params or {})})
    return f"os {method.upper()} {path}" + (f"?{'&'.join(keys)}" if keys else "")


def reads_of(counts: Counter[str]) -> int:
    """Resource reads: Octavia GETs except version discovery, plus ELBv2 describes."""
    return sum(
        n
        for kind, n in counts.items()
        if (kind.startswith("os GET ") and kind != "os GET /") or kind.startswith("elbv2 Desc")
    )


def discovery_of(counts: Counter[str]) -> int:
    return counts.get("os GET /", 0)


def writes_of(counts: Counter[str]) -> int:
    return sum(
        n
        for kind, n in counts.items()
        if kind.removeprefix("elbv2 ") in ELBV2_WRITES
        or (kind.startswith("os ") and not kind.startswith("os GET"))
    )


def describe_kinds(counts: Counter[str]) -> str:
    """`lb 10 · mem 20 · disc 10 · DTH 20` in a fixed order, unknown kinds in full."""
    order = list(KIND_ALIASES)
    shown = [f"{KIND_ALIASES[k]} {counts[k]}" for k in order if counts.get(k)]
    shown += [f"{k} {n}" for k, n in sorted(counts.items()) if k not in KIND_ALIASES]
    return " · ".join(shown) or "none"


@dataclass(slots=True)
class Phase:
    counts: Counter[str]
    seconds: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)
