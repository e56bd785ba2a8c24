"""A stack's release plan, and the one way to move a release forward: a wave at a time, and
only while no alert fires on a Prod that already runs the new version.

    uv run python -m tools.release.waves --stack prod
    uv run python -m tools.release.waves --stack prod --advance [--alertmanager URL] \
        [--prometheus URL] [--dry-run]
    uv run python -m tools.release.waves --stack prod --rollback [--dry-run]

The plan and `--rollback` need no cloud credential: they read `Pulumi.<stack>.yaml` through
`model.config`. `--advance` asks Alertmanager (v2 API) for alerts labelled `hybrid_infra_prod`
with an updated Prod's name. `--advance` changes one thing, `release.wave` in the stack file,
keeping every other byte of it; `pulumi up` (or the Deployments run on push) then rolls the next
wave.
`--dry-run` runs every check and prints the change, and writes nothing anywhere.

Before a later wave, `--advance` also checks that the released waves are applied (the stack's
`releasePlan` output, through `pulumi stack output`) and have soaked for `release.soakMinutes`
since the update that last changed a Prod's version or the wave (`pulumi stack history`),
that Prometheus holds the updated Prods' alert rules and samples (otherwise: "gate blind"),
and that `tools.verify` is green for them (their Deployments at the new version, their
segments reaching them through every edge proxy), with the stack's own credentials.

Exit status (`tools.cli`): 0 done, 1 refused (alerts fire, the gate is blind, verify is not
green, the release is unverified, finished, not applied or still soaking, or Alertmanager or
Prometheus cannot be read; no rollback fits), 2 the stack file is wrong or the command is
incomplete or asks for something its mode does not do, 3 a bug in this tool.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path

import yaml
from ruamel.yaml import YAML

from model import stackfile
from model.config import ConfigError, StackConfig
from model.placement import placement_for
from model.release import ALERT_LABEL, release_plan
from model.rollback import RollbackRefused, rollback
from model.stack import parse
from model.stackfile import PROJECT, ROOT, StackFileError
from tools import cli
from tools.release import gate
from tools.release.gate import ALERTMANAGER_ENV, AppliedSource, Refused, VerifySource

RELEASE_KEY = f"{PROJECT}:release"


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


def advance(
    path: Path,
    alertmanager: str | None,
    applied: AppliedSource | None = None,
    prometheus: Sequence[str] = (),
    verified: VerifySource | None = None,
    *,
    dry_run: bool = False,
) -> str:
    """Check, then move `release.wave` one up in the stack file (unless `dry_run`); returns
    what happened."""
    text = path.read_text()
    config = load_config(text, path.name)
    plan = release_plan(config)
    checked = gate.check(plan, config, alertmanager, applied, prometheus, verified)
    upcoming = plan.waves[plan.current]
    new_text = with_wave(text, upcoming.number)
    load_config(new_text, path.name)  # the edit must leave a stack file the program accepts
    if not dry_run:
        path.write_text(new_text)
    return (
        f"release.wave {plan.current} → {upcoming.number} in {path.name}: "
        f"{', '.join(upcoming.names)} take {plan.version} at the next `pulumi up` ({checked})\n"
        + _written(path, dry_run)
    )


def _written(path: Path, dry_run: bool) -> str:
    if dry_run:
        return "dry run: nothing was written"
    return f"wrote {path.name}: review it (git diff), then `pulumi up` (or merge it)"


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
    lines.append(_written(path, dry_run))
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


@cli.command(
    usage=(ConfigError, StackFileError, OSError),
    refused=(Refused, RollbackRefused),
)
def main(
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] = os.environ,
    applied: AppliedSource | None = None,
    verified: VerifySource | None = None,
) -> int:
    """`applied` stands in for the stack's backend (default: the Pulumi CLI in `--root`), and
    `verified` for `tools.verify` of the stack's live platform (default: through its outputs)."""
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
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="with --advance or --rollback: run every check and print the change, write nothing",
    )
    parser.add_argument(
        "--alertmanager",
        help=f"with --advance: Alertmanager base URL (default ${ALERTMANAGER_ENV}); alerts must "
        f"carry the label {ALERT_LABEL}=<Prod>",
    )
    parser.add_argument(
        "--prometheus",
        action="append",
        help=f"Prometheus base URL (default ${gate.PROMETHEUS_ENV}); repeat it for one per "
        "cluster. The gate refuses while an updated Prod's alert rules have no samples",
    )
    args = parser.parse_args(argv)
    misused = misused_flags(args)
    if misused:
        raise cli.UsageError(misused)
    url = args.alertmanager or environ.get(ALERTMANAGER_ENV)
    prometheus = args.prometheus or (
        [environ[gate.PROMETHEUS_ENV]] if environ.get(gate.PROMETHEUS_ENV) else []
    )
    checked = [("alertmanager", url), *(("prometheus", p) for p in prometheus)]
    for flag, given in checked if args.advance else []:
        parts = urllib.parse.urlsplit(given or "")
        if given and (parts.scheme not in ("http", "https") or not parts.netloc):
            raise cli.UsageError(f"--{flag} {given}: give a URL, e.g. http://{given}")
    stack = stackfile.read(args.stack, args.root)
    if args.rollback:
        print(rollback_now(stack.path, args.dry_run))
    elif args.advance:
        source = applied or (lambda: gate.applied_from_pulumi(args.stack, args.root))
        checks = verified or partial(gate.verify_from_pulumi, args.stack, args.root)
        print(advance(stack.path, url, source, prometheus, checks, dry_run=args.dry_run))
    else:
        print(render(args.stack, load_config(stack.text, stack.path.name)))
    return cli.OK


def misused_flags(args: argparse.Namespace) -> str | None:
    """A flag that means nothing in the mode asked for: refused, rather than quietly ignored."""
    if args.advance and args.rollback:
        return "--advance and --rollback are two different changes; give one of them"
    if args.dry_run and not (args.advance or args.rollback):
        return (
            "--dry-run only means something with --advance or --rollback; without them the "
            "plan is printed and nothing is ever written"
        )
    if args.alertmanager is not None and not args.advance:
        return "--alertmanager only means something with --advance, which checks alerts"
    if args.prometheus and not args.advance:
        return "--prometheus only means something with --advance, which checks the alert rules"
    return None


if __name__ == "__main__":
    sys.exit(main())
