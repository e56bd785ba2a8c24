"""Check the live platform of a stack against its outputs, read-only.

    uv run python -m tools.verify --stack prod
    uv run python -m tools.verify --stack prod --json
    uv run python -m tools.verify --stack prod --outputs outputs.json --prometheus http://prom:9090
    uv run python -m tools.verify --stack prod --only routing --edge A=http://edge-a.internal

Reads the outputs with `pulumi stack output --json --show-secrets` (run where `pulumi` is logged
in to the stack's backend), or from `--outputs FILE` (that command's output). Uses the stack's
own credentials: the AWS default chain, the clouds.yaml entry the stack names (with the stack's
`openstack:password` when it has one and the outputs come from `pulumi`), the kubeconfigs the
stack exports. Prints one table (check, subject, result, detail), or `--json`; progress goes
to stderr.

Exit status: 0 every check is green, 1 a check failed or could not be made, 2 a usage error.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NoReturn

from model.stackfile import ROOT
from tools import cli
from tools.cli import UsageError
from tools.verify import AREAS, alerts, verify
from tools.verify.context import Context
from tools.verify.outputs import (
    OutputsUnavailable,
    from_file,
    from_pulumi,
    openstack_password,
    parse,
)
from tools.verify.report import as_json, exit_code, summary, table
from tools.verify.runner import WORKERS, Meter


class _Parser(argparse.ArgumentParser):
    """argparse's mistakes in one line, like every other usage error here."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def parser() -> argparse.ArgumentParser:
    found = _Parser(prog="python -m tools.verify", description=__doc__.split("\n\n")[0])
    found.add_argument("--stack", required=True, help="the stack whose platform to check")
    found.add_argument("--outputs", type=Path, help="a file of `pulumi stack output --json`")
    found.add_argument("--root", type=Path, default=ROOT, help="directory of the Pulumi project")
    found.add_argument("--json", action="store_true", help="the rows as JSON on stdout")
    found.add_argument(
        "--prometheus",
        action="append",
        help=f"Prometheus base URL (default ${alerts.ENV}); repeat it for one per cluster",
    )
    found.add_argument(
        "--edge",
        action="append",
        default=[],
        metavar="CLUSTER=URL",
        help="where this machine reaches a cluster's edge proxy (default: its Service's load "
        "balancer)",
    )
    found.add_argument(
        "--only",
        action="append",
        choices=list(AREAS),
        help="check only these areas (repeatable)",
    )
    found.add_argument("--workers", type=int, default=WORKERS, help="reads in flight at once")
    return found


@cli.command(usage=(OutputsUnavailable,))
def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] = os.environ) -> int:
    started = time.monotonic()
    args = parser().parse_args(argv)
    edges = _edges(args.edge)
    prometheus = tuple(
        args.prometheus or ([environ[alerts.ENV]] if environ.get(alerts.ENV) else [])
    )
    for url in [*prometheus, *edges.values()]:
        _check_url(url)
    if args.workers < 1:
        raise UsageError("--workers must be at least 1")
    if args.outputs is not None:
        raw, password = from_file(args.outputs), None
    else:
        try:
            raw = from_pulumi(args.stack, args.root)
        except OutputsUnavailable as unavailable:
            raise UsageError(f"{unavailable} (or give --outputs FILE)") from unavailable
        password = openstack_password(args.stack, args.root)
    outputs = parse(raw)
    say(f"checking stack {args.stack} against its outputs, {args.workers} reads at a time")
    meter = Meter()
    ctx = Context(
        outputs=outputs, meter=meter, os_password=password, prometheus=prometheus, edges=edges
    )
    rows = verify(ctx, args.only or tuple(AREAS), args.workers, say)
    print(as_json(rows) if args.json else table(rows))
    say(f"{summary(rows)} ({meter.total} API calls in {time.monotonic() - started:.1f} s)")
    return exit_code(rows)


def say(line: str) -> None:
    print(f"verify: {line}", file=sys.stderr, flush=True)


def _edges(given: Sequence[str]) -> dict[str, str]:
    edges = {}
    for item in given:
        cluster, sep, url = item.partition("=")
        if not sep or not cluster or not url:
            raise UsageError(f"--edge {item}: give CLUSTER=URL, e.g. A=http://10.0.0.5:80")
        edges[cluster] = url
    return edges


def _check_url(url: str) -> None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"{url}: give a URL, e.g. http://{url}")


if __name__ == "__main__":
    sys.exit(main())
