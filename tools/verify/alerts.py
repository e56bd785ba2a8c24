"""Alerts: each Prod's alert rules are loaded in Prometheus, and have samples behind them.

An alert that never fires is no check unless it could fire. Per Prod: Prometheus evaluates
rules labelled `hybrid_infra_prod=<Prod>` without error (`/api/v1/rules`), and holds samples of
the Prod's requests now (an instant `/api/v1/query` of the series its rules read). Give each
cluster's Prometheus (`--prometheus`, repeated) or one that sees them all. The wave gate reads
Prometheus through here too.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from model.config import AppAlerts
from model.prod_alerts import requests_selector, samples_query
from model.release import ALERT_LABEL
from tools.verify.context import Context
from tools.verify.report import Row, error, fail, ok
from tools.verify.runner import Meter, Probe, Unchecked

CHECK = "alerts"
ENV = "PROMETHEUS_URL"


class Unreadable(Exception):
    """Prometheus did not answer, or not with success; the message names it."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot read Prometheus at {url} ({reason})")
        self.url = url
        self.reason = reason


@dataclass(frozen=True)
class Watched:
    """What the Prometheus servers hold about the Prods: their rules, and samples per Prod."""

    rules: Mapping[str, list[Mapping[str, Any]]] = field(default_factory=dict)
    samples: Mapping[str, int] = field(default_factory=dict)


def probes(ctx: Context) -> list[Probe]:
    out = ctx.outputs
    prods = [p.name for p in out.prods]
    if not prods or out.alerts is None:
        return []
    if not ctx.prometheus:
        return [Probe(CHECK, "prometheus", partial(_unwatched, len(prods)))]
    return [Probe(CHECK, prod, partial(check_prod, ctx, prod, prods, out.alerts)) for prod in prods]


def _unwatched(count: int) -> list[Row]:
    return [
        error(
            CHECK,
            "prometheus",
            f"no Prometheus given: the alert rules of {count} Prod(s) were not checked; give "
            f"--prometheus URL (or set {ENV})",
        )
    ]


# --- judging (pure) -------------------------------------------------------------------------


def judge(prod: str, watched: Watched, alerts: AppAlerts) -> Row:
    rules = watched.rules.get(prod, [])
    broken = [r for r in rules if r.get("health") == "err"]
    problems = []
    if not rules:
        problems.append(f"no alert rule labelled {ALERT_LABEL}={prod!r} is loaded")
    for rule in broken:
        problems.append(f"rule {rule.get('name')} fails: {rule.get('lastError', 'no reason')}")
    samples = watched.samples.get(prod, 0)
    if not samples:
        problems.append(f"no samples: {requests_selector(prod, alerts)} has no series now")
    if problems:
        return fail(CHECK, prod, "; ".join(problems) + ", so its alerts cannot fire")
    names = ", ".join(sorted(str(r.get("name")) for r in rules))
    return ok(CHECK, prod, f"rules {names} loaded; {samples} series of {alerts.requests_metric}")


# --- reading --------------------------------------------------------------------------------


def check_prod(ctx: Context, prod: str, prods: Sequence[str], alerts: AppAlerts) -> list[Row]:
    rules: list[Mapping[str, Any]] = []
    samples = 0
    for url in ctx.prometheus:
        try:
            seen = ctx.shared.get(
                ("prometheus", url), partial(watched, [url], prods, alerts, ctx.timeout, ctx.meter)
            )
        except Unreadable as down:
            raise Unchecked(
                f"{down}: check the URL and that this machine reaches it", f"prometheus {url}"
            ) from down
        rules += seen.rules.get(prod, [])
        samples += seen.samples.get(prod, 0)
    return [judge(prod, Watched({prod: rules}, {prod: samples}), alerts)]


def watched(
    urls: Sequence[str],
    prods: Sequence[str],
    alerts: AppAlerts,
    timeout: float = 10.0,
    meter: Meter | None = None,
) -> Watched:
    """Of `prods`: the alert rules each has in Prometheus, and how many series of its requests
    Prometheus holds now, over all of `urls`."""
    meter = meter or Meter()
    rules: dict[str, list[Mapping[str, Any]]] = {}
    samples: dict[str, int] = {}
    wanted = set(prods)
    for url in urls:
        groups = meter.call(
            "prometheus rules", _data, url, "/api/v1/rules", {"type": "alert"}, timeout
        )["groups"]
        for group in groups:
            for rule in group.get("rules", ()):
                prod = (rule.get("labels") or {}).get(ALERT_LABEL)
                if prod in wanted:
                    rules.setdefault(str(prod), []).append(rule)
        query = {"query": samples_query(prods, alerts)}
        found = meter.call("prometheus query", _data, url, "/api/v1/query", query, timeout)
        for series in found["result"]:
            prod = str(series["metric"].get(ALERT_LABEL))
            if prod in wanted:
                samples[prod] = samples.get(prod, 0) + int(float(series["value"][1]))
    return Watched(rules, samples)


def _data(url: str, path: str, params: Mapping[str, str], timeout: float) -> Any:
    """The `data` of a Prometheus API answer."""
    endpoint = f"{url.rstrip('/')}{path}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(endpoint, timeout=timeout) as response:
            answer = json.load(response)
    except (urllib.error.URLError, OSError, ValueError) as failed:
        raise Unreadable(url, str(failed)) from failed
    if not isinstance(answer, dict) or answer.get("status") != "success":
        raise Unreadable(url, f"{path} did not answer with success")
    return answer["data"]
