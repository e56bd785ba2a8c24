"""The wave gate: a release moves to its next wave only when that is safe.

- the release is verified before a wave reaches users, and there is a next wave;
- the released waves are what the stack runs (its `releasePlan` output, `pulumi stack
  output`) and have soaked for `release.soakMinutes` since the update that last changed a
  Prod's version or the wave (`pulumi stack history`, `model.soak`);
- no alert fires on a Prod that runs the new version (Alertmanager v2 API, alerts labelled
  `hybrid_infra_prod` with the Prod's name; a silenced alert does not count);
- and that silence means something: Prometheus has each such Prod's alert rules loaded and
  holds samples of its requests (the series its PodMonitor labels). A Prod without them is
  "gate blind": its alerts cannot fire;
- and `tools.verify` is green for those Prods: each Deployment Available at the new version
  with its PDB and HPA, and every segment they serve reaching them through every edge proxy.
  Quiet alerts are not proof that the wave landed.
"""

from __future__ import annotations

import datetime
import json
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model.config import AppAlerts, StackConfig
from model.prod_alerts import requests_selector
from model.release import ALERT_LABEL, ReleasePlan, alert_matcher, firing_on
from model.soak import SoakStart, soak_start
from tools.cli import UsageError
from tools.verify import alerts as verify_alerts
from tools.verify import outputs as stack_outputs
from tools.verify import verify
from tools.verify.context import Context
from tools.verify.report import Row

ALERTMANAGER_ENV = "ALERTMANAGER_URL"
PROMETHEUS_ENV = "PROMETHEUS_URL"
HISTORY_PAGE = 100
HISTORY_PAGES = 20
"""At most 2,000 updates back: two weeks of a 10-minute drift schedule, past the longest soak."""


class Refused(Exception):
    """Advancing now would be unsafe or pointless; the message says what to do instead."""


def check(
    plan: ReleasePlan,
    config: StackConfig,
    alertmanager: str | None,
    applied: AppliedSource | None,
    prometheus: Sequence[str] = (),
    verified: VerifySource | None = None,
) -> str:
    """Raise `Refused` unless the next wave may go; returns what was checked, for the user."""
    reason = refusal_before_alerts(plan)
    if reason:
        raise Refused(reason)
    if plan.current > 0:  # something runs the new version: it must be applied and soaked
        if applied is None:
            raise UsageError("no way to read what the stack applied")
        assert config.release is not None
        now = datetime.datetime.now(datetime.UTC)
        reason = refusal_until_soaked(plan, applied(), config.release.soak_minutes, now)
        if reason:
            raise Refused(reason)
    updated = plan.updated()
    if not updated:
        return "no Prod ran the new version yet, so no alert to check"
    missing = [
        f"--{flag} URL (or set {env})"
        for flag, env, given in (
            ("alertmanager", ALERTMANAGER_ENV, alertmanager),
            ("prometheus", PROMETHEUS_ENV, prometheus),
        )
        if not given
    ]
    if missing:
        raise UsageError(
            f"Prods {', '.join(updated)} run {plan.version}: give {' and '.join(missing)} "
            "so their alerts, and the data behind them, can be checked"
        )
    assert alertmanager and config.app is not None  # Prods run only with an app (model.rules)
    firing = firing_on(fetch_alerts(alertmanager, updated), updated)
    if firing:
        listed = ", ".join(f"{name} on {prod}" for name, prod in firing)
        raise Refused(
            f"{len(firing)} alert(s) fire on Prods that run {plan.version}: {listed}. "
            "Fix them, or roll back by setting release.wave lower, before advancing"
        )
    alerts = config.app.alerts
    with_rules, with_samples = fetch_watched(prometheus, updated, alerts)
    reason = refusal_while_blind(updated, with_rules, with_samples, alerts)
    if reason:
        raise Refused(reason)
    if verified is None:
        raise UsageError("no way to verify the released waves")
    rows = verified(updated)
    reason = refusal_until_verified(updated, rows)
    if reason:
        raise Refused(reason)
    return (
        f"no alert fires on {', '.join(updated)}, Prometheus has their rules and samples, and "
        f"verify is green for them ({len(rows)} checks)"
    )


def refusal_before_alerts(plan: ReleasePlan) -> str | None:
    """Reasons not to advance that need no Alertmanager."""
    if not plan.waves:
        return "there are no Prods, so there is no wave to advance to"
    if plan.current >= plan.last:
        return (
            f"wave {plan.current} is the last wave: every Prod runs {plan.version}. Start the "
            "next release by setting release.version, previousVersion, wave: 0 and "
            "verified: false"
        )
    upcoming = plan.current + 1
    if upcoming > plan.test_waves and not plan.verified:
        tests = [p for w in plan.waves if w.tier == "test" for p in w.names]
        where = f"on the test Prod(s) {', '.join(tests)}" if tests else "(there is no test Prod)"
        return (
            f"wave {upcoming} reaches users, but {plan.version} is not verified: verify it "
            f"{where}, then set release.verified: true"
        )
    return None


def fetch_alerts(url: str, prods: Sequence[str], timeout: float = 10.0) -> list[dict[str, Any]]:
    """Alerts that fire (not silenced) and carry one of `prods` in `hybrid_infra_prod`.

    Silenced alerts are left out: a silence is how an operator says "known, go ahead".
    Inhibited ones count: they still fire, only their notifications are held back.
    """
    query = urllib.parse.urlencode(
        {"active": "true", "silenced": "false", "filter": alert_matcher(prods)}
    )
    endpoint = f"{url.rstrip('/')}/api/v2/alerts?{query}"
    try:
        with urllib.request.urlopen(endpoint, timeout=timeout) as response:
            alerts = json.load(response)
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise Refused(
            f"cannot read alerts from {url} ({error}); not advancing, because an unknown "
            "alert state is not the same as no alerts"
        ) from error
    if not isinstance(alerts, list):
        raise Refused(f"{url} did not answer with a list of alerts; not advancing")
    return alerts


def fetch_watched(
    urls: Sequence[str], prods: Sequence[str], alerts: AppAlerts, timeout: float = 10.0
) -> tuple[set[str], set[str]]:
    """Of `prods`: those whose alert rules some Prometheus of `urls` evaluates, and those
    whose requests it holds a sample of now (read by `tools.verify.alerts`). Give each
    cluster's Prometheus, or one that sees them all."""
    try:
        seen = verify_alerts.watched(urls, prods, alerts, timeout)
    except verify_alerts.Unreadable as unreadable:
        raise Refused(
            f"{unreadable}; not advancing, because unknown data behind the alerts is not the "
            "same as data"
        ) from unreadable
    with_rules = {
        prod for prod, rules in seen.rules.items() if any(r.get("health") != "err" for r in rules)
    }
    return with_rules, set(seen.samples)


def refusal_while_blind(
    prods: Sequence[str], with_rules: set[str], with_samples: set[str], alerts: AppAlerts
) -> str | None:
    """A Prod whose rules are not loaded, or have no samples to read, cannot raise an alert:
    Alertmanager's silence about it is no evidence, so the gate does not pass on it."""
    lines = []
    for prod in prods:
        if prod not in with_rules:
            lines.append(
                f"gate blind: no alert rules for prod {prod} (Prometheus evaluates no rule "
                f"labelled {ALERT_LABEL}={prod!r})"
            )
        if prod not in with_samples:
            lines.append(
                f"gate blind: no samples for prod {prod} "
                f"({requests_selector(prod, alerts)} has no series now)"
            )
    if not lines:
        return None
    return "\n".join(
        [
            *lines,
            "Their alerts cannot fire, so no alert is no evidence; not advancing. Check that "
            "the cluster's Prometheus selects each Prod's PrometheusRule and PodMonitor "
            "(ruleSelector, podMonitorSelector) and that the app serves "
            f"{alerts.requests_metric} at app.metrics.path",
        ]
    )


def refusal_until_verified(prods: Sequence[str], rows: Sequence[Row]) -> str | None:
    """Every check verify made of the released Prods must be green, and it must have found
    each of them running: a verify that checked nothing proves nothing."""
    checked = {row.subject for row in rows if row.check == "prod" and row.result == "ok"}
    lines = [f"  {r.result} {r.check} {r.subject}: {r.detail}" for r in rows if not r.green]
    lines += [
        f"  not checked: prod {prod} (verify found no Deployment of it to check)"
        for prod in prods
        if prod not in checked and not any(r.subject == prod for r in rows if not r.green)
    ]
    if not lines:
        return None
    return "\n".join(
        [
            f"verify is not green for the released waves ({', '.join(prods)}):",
            *lines,
            "Fix them, or roll back by setting release.wave lower, before advancing "
            "(`python -m tools.verify --stack <stack>` shows every check)",
        ]
    )


def verify_from_pulumi(stack: str, cwd: Path, prods: Sequence[str]) -> list[Row]:
    """`tools.verify` of the released Prods against the stack's outputs (`pulumi stack
    output`), with the stack's credentials."""
    try:
        raw = stack_outputs.from_pulumi(stack, cwd)
    except stack_outputs.OutputsUnavailable as unavailable:
        raise UsageError(str(unavailable)) from unavailable
    return verify_released(raw, prods, stack_outputs.openstack_password(stack, cwd))


def verify_released(
    raw: Mapping[str, Any],
    prods: Sequence[str],
    os_password: str | None = None,
    edges: Mapping[str, str] | None = None,
) -> list[Row]:
    """`tools.verify` of what concerns `prods` only (their clusters and Deployments, the
    segments they serve): nothing a wave does not touch holds it back."""
    outputs = stack_outputs.parse(raw).focused(prods)
    ctx = Context(outputs, os_password=os_password, edges=dict(edges or {}))
    return verify(ctx, VERIFIED_AREAS)


VerifySource = Callable[[Sequence[str]], Sequence[Row]]
"""The released Prods → verify's rows about them."""
VERIFIED_AREAS = ("clusters", "routing")
"""The alerts area is the gate's own check above, made first."""


@dataclass(frozen=True)
class Applied:
    """What the stack's backend says its last successful `pulumi up` left running."""

    wave: int
    version: str
    finished: datetime.datetime
    """When the update that put this release in place ended: the soak runs from here."""


AppliedSource = Callable[[], Applied]


def applied_from_pulumi(
    stack: str, cwd: Path, env: Mapping[str, str] | None = None, pulumi: str = "pulumi"
) -> Applied:
    """The stack's `releasePlan` output, and when the update that last changed its release
    ended (the CLI; `model.soak` reads the history)."""

    def run(*args: str) -> Any:
        try:
            done = subprocess.run(
                [pulumi, *args, "--stack", stack],
                cwd=cwd,
                env=dict(env) if env is not None else None,
                capture_output=True,
                text=True,
                timeout=120,
            )
        except FileNotFoundError as error:
            raise UsageError(
                f"`{pulumi}` not found: it reads what stack {stack} applied"
            ) from error
        if done.returncode != 0:
            reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise UsageError(
                f"cannot read what stack {stack} applied (`pulumi {' '.join(args)}`): {reason}. "
                "Run where `pulumi` is logged in to the stack's backend"
            )
        return json.loads(done.stdout)

    plan = run("stack", "output", "releasePlan", "--json")
    soak = _soak_from_history(lambda page: run(*_history_page(page)))
    if soak.problem:
        raise Refused(soak.problem)
    if soak.since is None:
        raise UsageError(f"stack {stack} has no successful update yet: nothing is applied")
    return Applied(int(plan["wave"]), str(plan["version"]), soak.since)


def _history_page(page: int) -> tuple[str, ...]:
    return ("stack", "history", "--json", "--page-size", str(HISTORY_PAGE), "--page", str(page))


def _soak_from_history(page_of: Callable[[int], Any]) -> SoakStart:
    """Reads the history a page at a time, only as far back as the change it looks for."""
    history: list[Any] = []
    for page in range(1, HISTORY_PAGES + 1):
        entries = page_of(page)
        history.extend(entries)
        soak = soak_start(history)
        if soak.complete or len(entries) < HISTORY_PAGE:
            break
    return soak


def refusal_until_soaked(
    plan: ReleasePlan, applied: Applied, soak_minutes: int, now: datetime.datetime
) -> str | None:
    """The released waves must be what the stack runs, alert-free for `soak_minutes` since."""
    if (applied.version, applied.wave) != (plan.version, plan.current):
        return (
            f"the stack file releases wave {plan.current} of {plan.version}, but the stack runs "
            f"wave {applied.wave} of {applied.version}: run `pulumi up` first, then advance "
            "once it has soaked"
        )
    soaked = now - applied.finished
    needed = datetime.timedelta(minutes=soak_minutes)
    if soaked < needed:
        ready = (applied.finished + needed).strftime("%Y-%m-%d %H:%M UTC")
        return (
            f"wave {plan.current} has soaked {int(soaked.total_seconds() // 60)} of "
            f"{soak_minutes} minutes since it was applied; advance after {ready}"
        )
    return None
