"""Promote a verified release to the next stack, as a reviewable git change.

    uv run python -m tools.release.promote staging prod [--dry-run]

`--dry-run` runs every check and prints the diff, and writes nothing anywhere: not the stack
file, not git's index.

Only the release itself moves: `release.version` and `app.image` are copied from the source
stack file. Everything else in the target belongs to its environment and stays: secrets (they
are encrypted per stack), VPCs, subnets, tags, clusters, Prods, replica counts. Three release
fields are reset in the target because they describe the target's own rollout, not the source's:

- `release.previousVersion` becomes the target's outgoing version: Prods in waves not reached yet
  run `previousVersion` and it is the rollback target, so it must be what the target runs now
  (the source's previous version may be one the target never ran);
- `release.wave` restarts at 0: no Prod runs the new version until the waves advance;
- `release.verified` becomes false: the target has not verified the new version yet.

The file is edited in place, scalar by scalar, so comments, key order, quoting and layout stay
exactly as they were and the diff shows only the promoted lines. Nothing is committed: the
result is a working-tree change to review, commit and merge like any other.

Exit status (`tools.cli`): 0 promoted (or nothing to promote), 1 the promotion is refused, 2 a
stack file is wrong, 3 a bug in this tool.
"""

from __future__ import annotations

import argparse
import difflib
import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from model import stackfile
from model.config import ConfigError
from model.stack import parse
from model.stackfile import PROJECT, ROOT, STACK_ORDER, StackFileError
from tools import cli

# What a promotion copies, as key paths under `hybrid-infra:`.
PROMOTED: tuple[tuple[str, str], ...] = (("release", "version"), ("app", "image"))

KeyPath = tuple[str, str]


class PromotionRefused(Exception):
    """The promotion would be wrong or unreviewable; the message says what to do instead."""


@dataclass(frozen=True, slots=True)
class Change:
    """One scalar of the target stack file, and why it changes."""

    key: KeyPath
    old: Any
    new: Any
    why: str

    @property
    def path(self) -> str:
        return f"{PROJECT}:{'.'.join(self.key)}"


@dataclass(frozen=True, slots=True)
class Promotion:
    source: str
    target: str
    target_file: Path
    changes: tuple[Change, ...]
    diff: str
    written: bool


# --- the decisions (pure) --------------------------------------------------------------------


def check_order(source: str, target: str) -> None:
    """Releases move one environment at a time, forwards."""
    for stack in (source, target):
        if stack not in STACK_ORDER:
            raise PromotionRefused(f"unknown stack {stack!r}: stacks are {' → '.join(STACK_ORDER)}")
    if STACK_ORDER.index(target) != STACK_ORDER.index(source) + 1:
        raise PromotionRefused(
            f"{source} → {target} is not a promotion: releases move one step at a time along "
            f"{' → '.join(STACK_ORDER)}"
        )


def plan(
    source: str, target: str, source_config: Mapping[str, Any], target_config: Mapping[str, Any]
) -> tuple[Change, ...]:
    """The changes to the target's `hybrid-infra:*` config; empty if it already runs the release.

    Both configs are the stack files' `hybrid-infra:*` values without the namespace.
    """
    check_order(source, target)
    release = source_config.get("release")
    if not isinstance(release, Mapping):
        raise PromotionRefused(f"Pulumi.{source}.yaml has no {PROJECT}:release: nothing to promote")
    if release.get("verified") is not True:
        raise PromotionRefused(
            f"{source}'s release {release.get('version')} is not verified "
            f"({PROJECT}:release.verified is not true in Pulumi.{source}.yaml). Verify it in "
            f"{source}, commit verified: true there through review, then promote"
        )
    for top, key in PROMOTED:
        if not isinstance(source_config.get(top), Mapping) or key not in source_config[top]:
            raise PromotionRefused(f"Pulumi.{source}.yaml has no {PROJECT}:{top}.{key}")
        if not isinstance(target_config.get(top), Mapping) or key not in target_config[top]:
            raise PromotionRefused(
                f"Pulumi.{target}.yaml has no {PROJECT}:{top}.{key}; add the {top} key there "
                "by hand once (it holds the environment's own settings), then promote"
            )
        if isinstance(source_config[top][key], Mapping):
            raise PromotionRefused(f"{PROJECT}:{top}.{key} is a secret; secrets are never copied")

    changes = [
        Change((top, key), target_config[top][key], source_config[top][key], f"from {source}")
        for top, key in PROMOTED
        if target_config[top][key] != source_config[top][key]
    ]
    old = target_config["release"]
    if "previousVersion" not in old:
        raise PromotionRefused(
            f"Pulumi.{target}.yaml's {PROJECT}:release has no previousVersion; set it by hand"
        )
    if old["version"] != release["version"]:
        changes.append(
            Change(
                ("release", "previousVersion"),
                old.get("previousVersion"),
                old["version"],
                f"{target}'s outgoing version is its rollback target",
            )
        )
        if old.get("wave", 0) != 0:
            changes.append(
                Change(("release", "wave"), old["wave"], 0, "the rollout restarts at wave 0")
            )
        if old.get("verified", False) is not False:
            changes.append(
                Change(
                    ("release", "verified"),
                    old["verified"],
                    False,
                    f"{target} has not verified {release['version']} yet",
                )
            )
    return tuple(c for c in changes if c.old != c.new)


def validate(document: Mapping[str, Any], stack: str) -> None:
    """The promoted file must still be a valid stack: refuse rather than write a broken one."""
    try:
        parse(stackfile.project_values(document), source=f"Pulumi.{stack}.yaml")
    except ConfigError as error:
        problems = "\n".join(f"  - {p}" for p in error.problems)
        raise PromotionRefused(
            f"after the promotion Pulumi.{stack}.yaml would not validate, so nothing was "
            f"written:\n{problems}"
        ) from error


# --- editing the file in place ---------------------------------------------------------------


def apply(text: str, changes: Sequence[Change]) -> str:
    """`text` with each changed scalar rewritten where it stands, and nothing else touched.

    ruamel gives each scalar's line and column; the token there is replaced in the same style
    (quoted stays quoted). A round-trip dump would reflow flow mappings and is not used.
    """
    loader = YAML()
    loader.preserve_quotes = True
    config = loader.load(text)["config"]
    lines = text.splitlines(keepends=True)
    edits = []
    for change in changes:
        top, key = change.key
        parent: CommentedMap = config[f"{PROJECT}:{top}"]
        line, col = parent.lc.value(key)
        flow = parent.fa.flow_style()
        end = _token_end(lines[line], col, flow)
        edits.append((line, col, end, _render(change.new, lines[line][col:end])))
    for line, col, end, token in sorted(edits, reverse=True):
        lines[line] = lines[line][:col] + token + lines[line][end:]
    edited = "".join(lines)
    _check_edit(text, edited, changes)
    return edited


def _token_end(line: str, col: int, flow: bool) -> int:
    """Where the scalar that starts at `col` ends on its line."""
    quote = line[col]
    if quote in "\"'":
        i = col + 1
        while i < len(line):
            if line[i] == "\\" and quote == '"':
                i += 2
                continue
            if line[i] == quote:
                if quote == "'" and line[i + 1 : i + 2] == "'":
                    i += 2
                    continue
                return i + 1
            i += 1
        raise PromotionRefused(f"a quoted value spans lines at line {line!r}; edit it by hand")
    stops = [len(line.rstrip("\r\n"))]
    comment = line.find(" #", col)
    if comment != -1:
        stops.append(comment)
    if flow:
        stops.extend(i for i in (line.find(",", col), line.find("}", col)) if i != -1)
    end = min(stops)
    while end > col and line[end - 1] == " ":
        end -= 1
    return end


def _render(value: Any, old_token: str) -> str:
    """`value` as a YAML scalar in the style of the token it replaces."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    text = str(value)
    if old_token.startswith('"'):
        return json.dumps(text)
    if old_token.startswith("'"):
        return "'" + text.replace("'", "''") + "'"
    if yaml.safe_load(f"k: {text}") == {"k": text} and "#" not in text:
        return text
    return json.dumps(text)


def _check_edit(before: str, after: str, changes: Sequence[Change]) -> None:
    """The edited file must mean exactly the old one plus the changes, or the edit was wrong."""
    expected = yaml.safe_load(before)
    for change in changes:
        top, key = change.key
        expected["config"][f"{PROJECT}:{top}"][key] = change.new
    if yaml.safe_load(after) != expected:
        raise PromotionRefused("the in-place edit did not produce the planned file; edit by hand")


# --- git and files (I/O) ---------------------------------------------------------------------


def ensure_committed(path: Path, why: str) -> None:
    """A promotion must be its own reviewable change, on top of committed stack files."""
    # `git status` rewrites the index when a file's stat data is stale; a dry run writes
    # nothing anywhere, so the refresh is skipped (it is an optional lock in git's terms).
    result = subprocess.run(
        ["git", "--no-optional-locks", "status", "--porcelain", "--", path.name],
        cwd=path.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise PromotionRefused(
            f"{path.parent} is not a git repository ({result.stderr.strip()}); a promotion "
            "must be a git change to review"
        )
    if result.stdout.strip():
        raise PromotionRefused(
            f"{path.name} has uncommitted changes; commit or stash them first: {why}"
        )


def promote(root: Path, source: str, target: str, *, dry_run: bool = False) -> Promotion:
    """Check, plan, edit and (unless `dry_run`) write the target stack file."""
    check_order(source, target)
    source_stack, target_stack = stackfile.read(source, root), stackfile.read(target, root)
    source_file, target_file = source_stack.path, target_stack.path
    ensure_committed(source_file, "only a reviewed, committed release is promoted")
    ensure_committed(target_file, "the promotion must be a change of its own")
    target_text = target_stack.text
    changes = plan(
        source,
        target,
        stackfile.project_values(source_stack.document),
        stackfile.project_values(target_stack.document),
    )
    if not changes:
        return Promotion(source, target, target_file, (), "", written=False)
    edited = apply(target_text, changes)
    validate(yaml.safe_load(edited), target)
    diff = "".join(
        difflib.unified_diff(
            target_text.splitlines(keepends=True),
            edited.splitlines(keepends=True),
            f"a/{target_file.name}",
            f"b/{target_file.name}",
        )
    )
    if not dry_run:
        target_file.write_text(edited)
    return Promotion(source, target, target_file, changes, diff, written=not dry_run)


@cli.command(
    usage=(StackFileError, ConfigError), refused=(PromotionRefused,), refused_as="promotion refused"
)
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.release.promote",
        description=f"Promote a verified release one step along {' → '.join(STACK_ORDER)}.",
    )
    parser.add_argument(
        "source", choices=STACK_ORDER, help="the stack whose verified release is promoted"
    )
    parser.add_argument(
        "target", choices=STACK_ORDER, help="the next stack in order, whose file is edited"
    )
    parser.add_argument("--dry-run", action="store_true", help="show the diff, write nothing")
    parser.add_argument("--root", type=Path, default=ROOT, help="where the stack files are")
    args = parser.parse_args(argv)
    result = promote(args.root, args.source, args.target, dry_run=args.dry_run)
    if not result.changes:
        print(f"{args.target} already runs {args.source}'s release; nothing to promote")
        return cli.OK
    print(result.diff, end="")
    for change in result.changes:
        print(f"  {change.path}: {_yaml(change.old)} → {_yaml(change.new)} ({change.why})")
    if result.written:
        print(
            f"Wrote {result.target_file.name}. Review it (git diff), commit it on a branch and "
            "open a pull request; merging it is the promotion."
        )
    else:
        print("Dry run: nothing was written.")
    return cli.OK


def _yaml(value: Any) -> str:
    """A value as the stack file spells it (`true`, not Python's `True`)."""
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


if __name__ == "__main__":
    sys.exit(main())
