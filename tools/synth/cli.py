"""`python -m tools.synth`: a credential-free preview of what a stack file declares.

    uv run python -m tools.synth --stack prod                   # the desired resource tree
    uv run python -m tools.synth --stack prod --json prod.json  # a stable, redacted snapshot
    uv run python -m tools.synth --stack prod --diff old.json --exit-code   # CI: exit 1 on change
    uv run python -m tools.synth --diff old.json new.json       # two snapshots, no program run
    uv run python -m tools.synth --stack prod --graph docs/prod.svg  # also .png, .dot, .mmd
    uv run python -m tools.synth --update-snapshots             # rewrite tests/snapshots/*.json

The tree is printed when nothing else is asked for, or with `--tree`. Exit codes (`tools.cli`):
0 done (no changes), 1 changes found with `--exit-code`, 2 the stack config, the program or an
input file is wrong (the message says what), 3 a bug in this tool (with a traceback).

Everything goes through `tools.synth.snapshot`, so secrets are `[secret]` in every output.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import pulumi

from model import stackfile
from model.stackfile import ROOT, StackFileError
from tools import cli
from tools.cli import UsageError
from tools.synth import ProgramFailed, graph, snapshot, stack_config, synthesize
from tools.synth.diff import diff, render_diff, summary
from tools.synth.tree import render_tree

GOLDEN_DIR = ROOT / "tests" / "snapshots"
UPDATE_COMMAND = "uv run python -m tools.synth --update-snapshots"
TEXT_GRAPHS = {".dot": "dot", ".gv": "dot", ".mmd": "mermaid"}
IMAGE_GRAPHS = (".svg", ".png", ".pdf")
CHANGED = 1
"""With `--exit-code`: the diff found changes (`tools.cli`'s 1: the tool worked, the answer is
no)."""


@cli.command(usage=(StackFileError, snapshot.DuplicateUrn, graph.GraphvizMissing))
def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Parse `argv`, run, and return the exit code (tests call this in-process)."""
    out = out or sys.stdout
    args = _parser().parse_args(argv)
    try:
        return _run(args, out)
    except ProgramFailed as failed:
        raise UsageError(_program_failed(failed)) from failed


def stacks(root: Path = ROOT) -> list[str]:
    """Every stack with a `Pulumi.<stack>.yaml` in the project."""
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in root.glob("Pulumi.*.yaml"))


def golden_path(stack: str) -> Path:
    return GOLDEN_DIR / f"{stack}.json"


def synth_snapshot(
    stack: str, stack_file: Path | None = None, last_up: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Run the program for `stack` (config from `stack_file` if given) and snapshot it;
    `last_up`: the outputs the stack's last `up` left (an earlier snapshot's)."""
    source = stack_file or ROOT / f"Pulumi.{stack}.yaml"
    config, secret_keys = stack_config(stack, source.parent)  # a broken file stops here
    print(f"synth: running the program for {stack} ({source.name}) under mocks", file=sys.stderr)
    began = time.perf_counter()
    snap = snapshot.snapshot(
        synthesize(stack, config=config, secret_keys=secret_keys, last_up=last_up)
    )
    print(
        f"synth: {stack}: {len(snap['resources'])} resources in "
        f"{time.perf_counter() - began:.1f} s",
        file=sys.stderr,
    )
    return snap


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.synth",
        description="Preview a stack without credentials: run the program under Pulumi's mocks.",
    )
    parser.add_argument("--stack", help="stack name: reads Pulumi.<stack>.yaml")
    parser.add_argument(
        "--stack-file",
        type=Path,
        help="a Pulumi.<stack>.yaml elsewhere (e.g. an edited copy); implies --stack",
    )
    parser.add_argument("--tree", action="store_true", help="print the tree with other outputs")
    parser.add_argument("--json", metavar="FILE", help="write the snapshot JSON ('-': stdout)")
    parser.add_argument(
        "--diff",
        nargs="+",
        metavar="SNAPSHOT",
        help="OLD.json: compare with this run; OLD.json NEW.json: compare two files",
    )
    parser.add_argument(
        "--exit-code", action="store_true", help="with --diff: exit 1 when anything changed"
    )
    parser.add_argument(
        "--graph",
        action="append",
        metavar="FILE",
        help=".svg/.png/.pdf (Graphviz dot), .dot or .mmd (Mermaid); repeatable",
    )
    parser.add_argument(
        "--update-snapshots",
        action="store_true",
        help=f"rewrite {GOLDEN_DIR.relative_to(ROOT)}/<stack>.json (all stacks, or --stack)",
    )
    return parser


def _run(args: argparse.Namespace, out: TextIO) -> int:
    # Every input is checked here, before the program runs (which takes seconds).
    if args.diff and len(args.diff) > 2:
        raise UsageError("--diff takes OLD.json, or OLD.json NEW.json")
    if args.exit_code and not args.diff:
        raise UsageError("--exit-code only means something with --diff")
    for target in args.graph or []:
        if Path(target).suffix not in (*TEXT_GRAPHS, *IMAGE_GRAPHS):
            raise UsageError(f"--graph {target}: use .svg, .png, .pdf, .dot or .mmd")
        if Path(target).suffix in IMAGE_GRAPHS:
            graph.require_dot()
    before = _read_snapshot(Path(args.diff[0])) if args.diff else None
    if args.diff and len(args.diff) == 2:
        old, new = (_read_snapshot(Path(p)) for p in args.diff)
        return _report_diff(old, new, args.diff[0], args.diff[1], args.exit_code, out)
    stack = _stack(args)
    if args.update_snapshots and args.stack_file:
        raise UsageError("--update-snapshots records the project's own stack files only")
    if args.update_snapshots:
        return _update_snapshots([stack] if stack else stacks(), out)
    if stack is None:
        raise UsageError("say which stack: --stack NAME (or --stack-file Pulumi.<stack>.yaml)")
    if args.stack_file is None:
        stackfile.stack_path(stack, ROOT)  # an unknown stack, before the program runs
    # The old snapshot stands for the stack as deployed, so its outputs are the last up's, as
    # the program reads them under the real engine (tagged LBs keep what they had).
    snap = synth_snapshot(stack, args.stack_file, before.get("outputs") if before else None)
    did_something = False
    if args.json:
        _write_json(snap, args.json, out)
        if args.json != "-":
            print(f"wrote {args.json}", file=sys.stderr)
        did_something = True
    for target in args.graph or []:
        _write_graph(snap, Path(target))
        print(f"wrote {target}", file=sys.stderr)
        did_something = True
    code = cli.OK
    if before is not None:
        code = _report_diff(before, snap, args.diff[0], f"{stack} (this run)", args.exit_code, out)
        did_something = True
    if args.tree or not did_something:
        out.write(render_tree(snap))
    return code


def _stack(args: argparse.Namespace) -> str | None:
    if args.stack_file is None:
        return str(args.stack) if args.stack else None
    name = args.stack_file.name
    if not (name.startswith("Pulumi.") and name.endswith(".yaml")):
        raise UsageError(f"--stack-file must be named Pulumi.<stack>.yaml (got {name})")
    from_file = name[len("Pulumi.") : -len(".yaml")]
    if args.stack and args.stack != from_file:
        raise UsageError(f"--stack {args.stack} does not match --stack-file {name}")
    if not args.stack_file.is_file():
        raise UsageError(f"--stack-file {args.stack_file}: no such file")
    return from_file


def _update_snapshots(names: list[str], out: TextIO) -> int:
    GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
    for stack in names:
        snap = synth_snapshot(stack)
        path = golden_path(stack)
        text = snapshot.dumps(snap)
        if path.is_file() and path.read_text() == text:
            print(f"{path.relative_to(ROOT)}: unchanged", file=out)
            continue
        change = summary(diff(snapshot.loads(path.read_text()), snap)) if path.is_file() else "new"
        path.write_text(text)
        print(f"{path.relative_to(ROOT)}: updated ({change})", file=out)
    return cli.OK


def _report_diff(
    old: dict[str, Any],
    new: dict[str, Any],
    old_label: str,
    new_label: str,
    exit_code: bool,
    out: TextIO,
) -> int:
    d = diff(old, new)
    out.write(render_diff(d, old_label, new_label))
    return CHANGED if exit_code and not d.empty else cli.OK


def _read_snapshot(path: Path) -> dict[str, Any]:
    try:
        return snapshot.loads(path.read_text(), str(path))
    except FileNotFoundError as error:
        raise UsageError(f"{path}: no such snapshot file") from error
    except ValueError as error:
        raise UsageError(str(error)) from error


def _write_json(snap: dict[str, Any], target: str, out: TextIO) -> None:
    text = snapshot.dumps(snap)
    if target == "-":
        out.write(text)
    else:
        Path(target).write_text(text)


def _write_graph(snap: dict[str, Any], target: Path) -> None:
    picture = graph.layout(snap)
    kind = TEXT_GRAPHS.get(target.suffix)
    if kind == "mermaid":
        target.write_text(graph.to_mermaid(picture))
    elif kind == "dot":
        target.write_text(graph.to_dot(picture))
    else:
        graph.render_svg(graph.to_dot(picture), target)


def _program_failed(failed: ProgramFailed) -> str:
    """A stack-file mistake or a `RunError` is a message for the user; anything else is a bug
    in the program, so its traceback is shown too."""
    cause = failed.cause
    if isinstance(cause, pulumi.RunError):
        return str(cause)
    return "the program raised:\n" + "".join(traceback.format_exception(cause)).rstrip("\n")
