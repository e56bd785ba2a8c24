"""A stack's release plan, and the one way to move a release forward: a wave at a time, and
only while no alert fires on a Prod that already runs the new version.

    uv run python -m tools.release.waves --stack prod
    uv run python -m tools.release.waves --stack prod --advance [--alertmanager URL]

It needs no cloud credential: it reads `Pulumi.<stack>.yaml` through `model.config`, and
`--advance` asks Alertmanager (v2 API) for alerts labelled `hybrid_infra_prod` with an updated
Prod's name. `--advance` changes one thing, `release.wave` in the stack file, keeping every
other byte of it; `pulumi up` (or the Deployments run on push) then rolls the next wave.

Before a later wave, `--advance` also checks that the released waves are applied (the stack's
`releasePlan` output, through `pulumi stack output`) and have soaked for `release.soakMinutes`
since the last successful update (`pulumi stack history`).

Exit status: 0 done, 1 refused (alerts fire, the release is unverified, finished, not applied
or still soaking, or Alertmanager cannot be read), 2 the stack file is wrong or the command is
incomplete.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML

from model import stackfile
from model.config import ConfigError, StackConfig
from model.placement import placement_for
from model.release import ALERT_LABEL, ReleasePlan, alert_matcher, firing_on, release_plan
from model.rollback import RollbackRefused, rollback
from model.stack import parse
from model.stackfile import PROJECT, ROOT, StackFileError

ALERTMANAGER_ENV = "ALERTMANAGER_URL"
RELEASE_KEY = f"{PROJECT}:release"


class Refused(Exception):
    """Advancing now would be unsafe or pointless; the message says what to do instead."""


class UsageError(Exception):
    """The command lacks something it needs for this stack."""


# --- reading the stack ----------------------------------------------------------------------


def load_config(text: str, source: str = "the stack file") -> StackConfig:
    """The stack's `hybrid-infra:*` values, parsed as the program parses them.

    Secure values cannot be read without the stack's key; they become a placeholder, as under
    `tools.synth`. No release rule looks at a secret.
    """
    return parse(stackfile.project_values(yaml.safe_load(text) or {}), source=source)


# --- the plan, for people -------------------------------------------------------------------


def render(stack: str, config: StackConfig) -> str:
    plan = release_plan(config)
    if not plan.waves:
        return f"{stack}: no Prods, so no release plan"
    verified = "verified" if plan.verified else "not verified"
    lines = [
        f"{stack}: release {plan.version} (previous {plan.previous_version}), "
        f"wave {plan.current} of {plan.last}, {verified}"
    ]
    for wave in plan.waves:
        state = "released" if wave.number <= plan.current else "waiting"
        first = f"wave {wave.number:<2} {wave.tier:<9}  {state:<8}"
        for i, prod in enumerate(wave.prods):
            head = first if i == 0 else " " * len(first)
            lines.append(
                f"  {head}  {prod.name:<8} on {prod.cluster:<8} {prod.users:>7} users  "
                f"runs {prod.version}"
            )
    if plan.current < plan.last:
        upcoming = plan.waves[plan.current]
        lines.append(
            f"next: wave {upcoming.number} ({', '.join(upcoming.names)}) with "
            f"`python -m tools.release.waves --stack {stack} --advance`"
        )
    else:
        lines.append(f"done: every Prod runs {plan.version}")
    placement = placement_for(config)
    if placement.drained:
        lines.append(f"drained clusters: {', '.join(sorted(placement.drained))}")
        for segment in placement.segments:
            if segment.moved:
                to = " + ".join(r.prod for r in segment.routes)
                lines.append(f"  {segment.segment} ({segment.users} users) → {to}")
    return "\n".join(lines)


# --- advancing ------------------------------------------------------------------------------


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


def advance(path: Path, alertmanager: str | None, applied: AppliedSource | None = None) -> str:
    """Check, then move `release.wave` one up in the stack file; returns what happened."""
    text = path.read_text()
    config = load_config(text, path.name)
    plan = release_plan(config)
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
    if updated:
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
    upcoming = plan.waves[plan.current]
    new_text = with_wave(text, upcoming.number)
    load_config(new_text, path.name)  # the edit must leave a stack file the program accepts
    path.write_text(new_text)
    checked = (
        f"no alert fires on {', '.join(updated)}"
        if updated
        else "no Prod ran the new version yet, so no alert to check"
    )
    return (
        f"release.wave {plan.current} → {upcoming.number} in {path.name}: "
        f"{', '.join(upcoming.names)} take {plan.version} at the next `pulumi up` ({checked})"
    )


def with_wave(text: str, wave: int) -> str:
    """`text` with `release.wave` set to `wave`, every other byte kept.

    ruamel's round trip finds where the value sits, then only that token is rewritten: a full
    round-trip dump keeps comments but reflows hand-wrapped flow mappings.
    """
    yaml_rt = YAML()
    document = yaml_rt.load(text)
    try:
        release = document["config"][RELEASE_KEY]
    except (KeyError, TypeError) as error:
        raise StackFileError(f"the stack file has no {RELEASE_KEY} key") from error
    lines = text.splitlines(keepends=True)
    if "wave" in release:
        line, column = release.lc.value("wave")
        token = re.compile(r"""(['"]?)(\d+)\1""").match(lines[line], column)
        if token is None:
            raise StackFileError(f"{RELEASE_KEY}.wave is not a number (line {line + 1})")
        lines[line] = lines[line][: token.start(2)] + str(wave) + lines[line][token.end(2) :]
        return "".join(lines)
    if release.fa.flow_style():
        raise StackFileError(f"add `wave: 0` to {RELEASE_KEY} first (it is a flow mapping)")
    last = list(release)[-1]
    line = release.lc.value(last)[0]
    indent = release.lc.key(last)[1]
    newline = "\n" if not lines[line].endswith("\r\n") else "\r\n"
    if not lines[line].endswith(("\n", "\r")):
        lines[line] += newline
    lines.insert(line + 1, f"{' ' * indent}wave: {wave}{newline}")
    return "".join(lines)


SEGMENTS_KEY = f"{PROJECT}:segments"


def rollback_now(path: Path, dry_run: bool) -> str:
    """Move every segment off the new version (model.rollback), edit the stack file."""
    text = path.read_text()
    config = load_config(text, path.name)
    moves = rollback(config)
    new_text = with_segments(text, {m.segment: m.after for m in moves})
    load_config(new_text, path.name)  # the edit must leave a stack file the program accepts
    if not dry_run:
        path.write_text(new_text)
    plan = release_plan(config)
    lines = [
        f"rollback: {len(moves)} segment(s) leave {plan.version} for Prods on "
        f"{plan.previous_version}; no Prod is redeployed, only the edge proxies change"
    ]
    for move in moves:
        lines.append(
            f"  {move.segment:<16} {move.users:>7} users  {', '.join(move.before)}  →  "
            f"{', '.join(move.after)}"
        )
    lines.append(
        "dry run: nothing was written"
        if dry_run
        else f"wrote {path.name}: review it (git diff), then `pulumi up` (or merge it)"
    )
    return "\n".join(lines)


def with_segments(text: str, prods: Mapping[str, Sequence[str]]) -> str:
    """`text` with the `prods` of these segments replaced, nothing else touched."""
    document = YAML().load(text)
    try:
        segments = document["config"][SEGMENTS_KEY]
    except (KeyError, TypeError) as error:
        raise StackFileError(f"the stack file has no {SEGMENTS_KEY} key") from error
    lines = text.splitlines(keepends=True)
    for segment in segments:
        if segment.get("name") not in prods:
            continue
        value = segment["prods"]
        line, column = segment.lc.value("prods")
        if not value.fa.flow_style() or "]" not in lines[line][column:]:
            raise StackFileError(
                f"{SEGMENTS_KEY}: write the prods of {segment['name']} as a list on one line "
                f"([A-1, B-2]) so it can be edited in place (line {line + 1})"
            )
        end = lines[line].index("]", column) + 1
        listed = "[" + ", ".join(prods[segment["name"]]) + "]"
        lines[line] = lines[line][:column] + listed + lines[line][end:]
    return "".join(lines)


# --- command line ---------------------------------------------------------------------------


def main(
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] = os.environ,
    applied: AppliedSource | None = None,
) -> int:
    """`applied` stands in for the stack's backend (default: the Pulumi CLI in `--root`)."""
    parser = argparse.ArgumentParser(prog="python -m tools.release.waves", description=__doc__)
    parser.add_argument("--stack", required=True, help="the stack: reads Pulumi.<stack>.yaml")
    parser.add_argument("--root", type=Path, default=ROOT, help="directory of the stack file")
    parser.add_argument(
        "--advance", action="store_true", help="check alerts, then release the next wave"
    )
    parser.add_argument(
        "--rollback",
        action="store_true",
        help="move every segment off the new version to Prods on release.previousVersion",
    )
    parser.add_argument("--dry-run", action="store_true", help="with --rollback: write nothing")
    parser.add_argument(
        "--alertmanager",
        default=environ.get(ALERTMANAGER_ENV),
        help=f"Alertmanager base URL (default ${ALERTMANAGER_ENV}); alerts must carry the "
        f"label {ALERT_LABEL}=<Prod>",
    )
    args = parser.parse_args(argv)
    url = args.alertmanager
    parts = urllib.parse.urlsplit(url or "")
    if url and (parts.scheme not in ("http", "https") or not parts.netloc):
        print(f"error: --alertmanager {url}: give a URL, e.g. http://{url}", file=sys.stderr)
        return 2
    try:
        stack = stackfile.read(args.stack, args.root)
        if args.rollback:
            print(rollback_now(stack.path, args.dry_run))
        elif args.advance:
            source = applied or (lambda: applied_from_pulumi(args.stack, args.root))
            print(advance(stack.path, url, source))
        else:
            print(render(args.stack, load_config(stack.text, stack.path.name)))
    except (Refused, RollbackRefused) as refused:
        print(f"refused: {refused}", file=sys.stderr)
        return 1
    except (ConfigError, StackFileError, UsageError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
