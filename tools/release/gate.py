"""The wave gate: a release moves to its next wave only when that is safe.

- the release is verified before a wave reaches users, and there is a next wave;
- the released waves are what the stack runs (its `releasePlan` output, `pulumi stack
  output`) and have soaked for `release.soakMinutes` since the last successful update
  (`pulumi stack history`);
- no alert fires on a Prod that runs the new version (Alertmanager v2 API, alerts labelled
  `hybrid_infra_prod` with the Prod's name; a silenced alert does not count).
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

from model.config import StackConfig
from model.release import ReleasePlan, alert_matcher, firing_on

ALERTMANAGER_ENV = "ALERTMANAGER_URL"


class Refused(Exception):
    """Advancing now would be unsafe or pointless; the message says what to do instead."""


class UsageError(Exception):
    """The command lacks something it needs for this stack."""


def check(
    plan: ReleasePlan,
    config: StackConfig,
    alertmanager: str | None,
    applied: AppliedSource | None,
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
    if not alertmanager:
        raise UsageError(
            f"Prods {', '.join(updated)} run {plan.version}: give --alertmanager URL "
            f"(or set {ALERTMANAGER_ENV}) so their alerts can be checked"
        )
    firing = firing_on(fetch_alerts(alertmanager, updated), updated)
    if firing:
        listed = ", ".join(f"{name} on {prod}" for name, prod in firing)
        raise Refused(
            f"{len(firing)} alert(s) fire on Prods that run {plan.version}: {listed}. "
            "Fix them, or roll back by setting release.wave lower, before advancing"
        )
    return f"no alert fires on {', '.join(updated)}"


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


@dataclass(frozen=True)
class Applied:
    """What the stack's backend says its last successful `pulumi up` left running."""

    wave: int
    version: str
    finished: datetime.datetime


AppliedSource = Callable[[], Applied]


def applied_from_pulumi(
    stack: str, cwd: Path, env: Mapping[str, str] | None = None, pulumi: str = "pulumi"
) -> Applied:
    """The stack's `releasePlan` output and when its last successful update ended (the CLI)."""

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
    history = run("stack", "history", "--json", "--page-size", "20")
    updates = [h for h in history if h.get("kind") == "update" and h.get("result") == "succeeded"]
    if not updates:
        raise UsageError(f"stack {stack} has no successful update yet: nothing is applied")
    finished = max(_timestamp(h["endTime"]) for h in updates)
    return Applied(int(plan["wave"]), str(plan["version"]), finished)


def _timestamp(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


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
