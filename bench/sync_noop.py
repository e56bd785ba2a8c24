"""A no-op sync against the physical limit, with a simulated round trip (a benchmark, not a test).

    uv run python -m bench.sync_noop                # 2x1x100, 5x2x100, 10x2x100; 20 ms per call
    uv run python -m bench.sync_noop --quick        # one small size, a smoke run; no README
    uv run python -m bench.sync_noop --delay-ms 50 --repeats 9 --no-readme

The physical limit is what a no-op cannot avoid: per LB one GET of the LB, one member list per
pool and one DescribeTargetHealth per target group, made one after another on warm clients
("bare sequential reads"). The real Octavia API and a moto server each sit behind a proxy that
holds every request for `--delay-ms` before forwarding it, so a round trip costs what it costs
over a WAN rather than on loopback. The LBs of a size are built by `bench.world`, as for
`bench.sync_scale`, then per repeat, in rotating order, the bench times

- the bare sequential reads of every LB;
- a no-op `diff` of every LB (the provider object in-process, as the provider host runs it);
- a no-op `update` of every LB;

with the provider's own clients, which it keeps for the life of its process (warmed by one
untimed sync first). It counts the API calls of each, then swaps 1% of the members in Octavia
and counts the writes of the `update` that follows.

Goals (PASS/FAIL): no-op `diff` and `update` each take at most 1.0x the bare sequential reads
(median of the runs), read exactly the budget and write nothing; a churn sync writes at most
ceil(changed / 200) times per target group and direction. A full run rewrites the "sync_noop"
figures in bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import math
import os
import statistics
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from http.client import HTTPConnection
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from bench import world
from bench.calls import CallCounter, Phase, reads_of, writes_of
from bench.harness import README, ROOT, quiet_libraries, raise_on_sigterm, say, write_figures

FULL_SIZES = (world.Size(2, 1, 100), world.Size(5, 2, 100), world.Size(10, 2, 100))
QUICK_SIZES = (world.Size(2, 1, 20),)
RATIO_GOAL = 1.0
MAX_TARGETS_PER_CALL = 200
_WARM: list[Any] = []
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}


class DelayProxy:
    """An HTTP proxy on 127.0.0.1 that holds each request `delay` seconds, then forwards it.

    One upstream connection per proxy thread, kept alive, so the proxy adds the delay and
    nothing that grows with load. Every response is sent whole with a Content-Length.
    """

    def __init__(self, upstream: str, delay: float) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.prefix = parts.path.rstrip("/")
        self.delay = delay
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                time.sleep(proxy.delay)
                status, headers, payload = proxy.send(self.command, self.path, self.headers, body)
                self.send_response(status)
                for name, value in headers:
                    if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.local = threading.local()
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}{self.prefix}/"

    def send(
        self, method: str, path: str, headers: Any, body: bytes | None
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        conn = getattr(self.local, "conn", None)
        for attempt in range(2):
            if conn is None:
                conn = self.local.conn = HTTPConnection(*self.upstream, timeout=120)
            try:
                out = {k: v for k, v in headers.items() if k.lower() not in HOP_BY_HOP}
                conn.request(method, path, body=body, headers=out)
                response = conn.getresponse()
                return response.status, response.getheaders(), response.read()
            except (ConnectionError, OSError):
                conn.close()
                conn = self.local.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def __enter__(self) -> DelayProxy:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()


# --------------------------------------------------------------------------------------------
# The three things timed
# --------------------------------------------------------------------------------------------


def bare_sequential_reads(fleet: world.Fleet) -> None:
    """The reads a no-op cannot do without, one after another, on the provider's warm clients."""
    from providers.octavia_nlb_sync import elbv2 as elbv2_shell
    from providers.octavia_nlb_sync import octavia as octavia_shell

    if not _WARM:  # built once: the limit is the reads, not client construction
        _WARM.extend((octavia_shell.connect(None), elbv2_shell.client(None)))
    conn, client = _WARM
    for lb_id, bindings in zip(fleet.lb_ids, fleet.bindings, strict=True):
        conn.load_balancer.get_load_balancer(lb_id)
        for binding in bindings:
            list(conn.load_balancer.members(binding.pool_id))
        for binding in bindings:
            client.describe_target_health(TargetGroupArn=binding.target_group_arn)


def diff_all(fleet: world.Fleet) -> None:
    from providers.octavia_nlb_sync import OctaviaNlbSyncProvider

    provider = OctaviaNlbSyncProvider()
    with contextlib.redirect_stderr(io.StringIO()):
        for state, inputs in zip(fleet.states, fleet.inputs, strict=True):
            if provider.diff("id", state, inputs).changes:
                raise RuntimeError("a no-op diff reported a change")


def update_all(fleet: world.Fleet) -> None:
    world.sync_all(fleet, first=False)


def create_all(fleet: world.Fleet) -> None:
    world.sync_all(fleet, first=True)


# --------------------------------------------------------------------------------------------
# One size
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Result:
    size: world.Size
    bare: Phase
    diff: Phase
    update: Phase
    churn_writes: Counter[str]
    churned: int
    churned_groups: int

    def ratio(self, side: Phase) -> float:
        return side.median / self.bare.median

    def paired(self, side: Phase) -> float:
        return statistics.median(
            s / b for s, b in zip(side.seconds, self.bare.seconds, strict=True)
        )


def measure(
    fleet: world.Fleet, counter: CallCounter, conn: Any, repeats: int, addresses: world.Addresses
) -> Result:
    sides: dict[str, tuple[Callable[[world.Fleet], None], Phase]] = {
        "bare": (bare_sequential_reads, Phase(Counter(), [])),
        "diff": (diff_all, Phase(Counter(), [])),
        "update": (update_all, Phase(Counter(), [])),
    }
    names = list(sides)
    for rep in range(repeats):
        order = names[rep % 3 :] + names[: rep % 3]  # rotate, so load drift hits all alike
        for name in order:
            action, timed = sides[name]
            with counter.window() as counts:
                began = time.perf_counter()
                action(fleet)
                timed.seconds.append(time.perf_counter() - began)
            timed.counts = timed.counts or counts
    line = "; ".join(f"{n} ms {statistics.median(sides[n][1].seconds) * 1000:,.0f}" for n in names)
    say(f"  [{fleet.size.label}] {line}")

    removed, added, pools = world.churn(conn, fleet, 0, addresses)
    with counter.window() as churn_counts:
        update_all(fleet)
    return Result(
        fleet.size,
        sides["bare"][1],
        sides["diff"][1],
        sides["update"][1],
        churn_counts,
        max(removed, added),
        pools,
    )


def verdicts(results: list[Result]) -> list[str]:
    lines = []
    for r in results:
        budget = r.size.read_budget
        for name, side in (("diff", r.diff), ("update", r.update)):
            ratio = r.ratio(side)
            ok = ratio <= RATIO_GOAL
            lines.append(
                f"{'PASS' if ok else 'FAIL'} {r.size.label} no-op {name}: {ratio:.2f}x the bare "
                f"sequential reads (goal <= {RATIO_GOAL:.1f}x)"
            )
            calls = reads_of(side.counts), writes_of(side.counts)
            ok = calls == (budget, 0)
            lines.append(
                f"{'PASS' if ok else 'FAIL'} {r.size.label} no-op {name}: {calls[0]} reads "
                f"(budget {budget}), {calls[1]} writes"
            )
        # Each touched group: one direction each way, ceil(changed / 200) calls per direction.
        limit = 2 * r.churned_groups * math.ceil(r.churned / MAX_TARGETS_PER_CALL)
        churn_writes = writes_of(r.churn_writes)
        ok = churn_writes <= limit
        lines.append(
            f"{'PASS' if ok else 'FAIL'} {r.size.label} 1% churn: {churn_writes} writes "
            f"(at most ceil(changed/200) per group and direction: {limit})"
        )
    return lines


def table(results: list[Result], delay_ms: float, repeats: int, started: str) -> str:
    rows = [
        f"{started} · {os.cpu_count()} CPU cores (shared, noisy) · {delay_ms:g} ms added to "
        f"every API call · median of {repeats}",
        "",
        "| size | reads (budget) | bare sequential ms | no-op diff ms | diff ratio (paired) "
        "| no-op update ms | update ratio (paired) | writes (no-op) | churn writes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        rows.append(
            f"| {r.size.label} | {reads_of(r.diff.counts)} ({r.size.read_budget}) "
            f"| {r.bare.median * 1000:,.0f} | {r.diff.median * 1000:,.0f} "
            f"| {r.ratio(r.diff):.2f} ({r.paired(r.diff):.2f}) | {r.update.median * 1000:,.0f} "
            f"| {r.ratio(r.update):.2f} ({r.paired(r.update):.2f}) "
            f"| {writes_of(r.update.counts)} | {writes_of(r.churn_writes)} |"
        )
    return "\n".join(rows)


def run(sizes: tuple[world.Size, ...], repeats: int, delay_ms: float, write_readme: bool) -> int:
    import boto3

    quiet_libraries()
    raise_on_sigterm()
    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    results = []
    with contextlib.ExitStack() as stack:
        world.environment(stack)
        counter = CallCounter()
        stack.enter_context(counter.hooked())
        octavia_url = os.environ["OS_LOAD_BALANCER_ENDPOINT_OVERRIDE"]
        aws_url = os.environ["AWS_ENDPOINT_URL"]
        import openstack

        direct = openstack.connect()
        elb = boto3.client("elbv2")
        vpc_id = boto3.client("ec2").create_vpc(CidrBlock=world.VPC_CIDR)["Vpc"]["VpcId"]
        octavia_proxy = stack.enter_context(DelayProxy(octavia_url, delay_ms / 1000))
        aws_proxy = stack.enter_context(DelayProxy(aws_url, delay_ms / 1000))
        for size in sizes:
            say(f"[{size.label}] building {size.lbs} LBs directly (no delay)")
            addresses = world.Addresses()
            lb_ids = world.post_lbs(direct, size, uuid.uuid4().hex, addresses)
            fleet = world.finish_fleet(direct, elb, vpc_id, size, lb_ids)
            delayed = {
                "OS_LOAD_BALANCER_ENDPOINT_OVERRIDE": octavia_proxy.url,
                "AWS_ENDPOINT_URL": aws_proxy.url.rstrip("/"),
            }
            with world.patched_env(delayed, drop_prefixes=()):
                say(f"[{size.label}] first sync and warm-up through the {delay_ms:g} ms proxy")
                create_all(fleet)
                update_all(fleet)
                bare_sequential_reads(fleet)
                say(f"[{size.label}] bare, diff, update x{repeats}")
                results.append(measure(fleet, counter, direct, repeats, addresses))
    lines = verdicts(results)
    report = table(results, delay_ms, repeats, started)
    print(report)
    print("\n".join(lines))
    if write_readme:
        write_figures("sync_noop", report + "\n\n" + "\n".join(f"- {line}" for line in lines))
        say(f"wrote the figures into {README.relative_to(ROOT)}")
    return 0 if all(line.startswith("PASS") for line in lines) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", nargs="+", type=world.Size.parse, help="LxPxM (default: full set)"
    )
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--delay-ms", type=float, default=20.0)
    parser.add_argument("--quick", action="store_true", help="one small size; no README")
    parser.add_argument("--no-readme", action="store_true")
    args = parser.parse_args(argv)
    sizes = tuple(args.sizes or (QUICK_SIZES if args.quick else FULL_SIZES))
    repeats = 3 if args.quick else args.repeats
    write = not (args.quick or args.no_readme or args.sizes)
    try:
        return run(sizes, repeats, args.delay_ms, write)
    except KeyboardInterrupt:
        say("interrupted; servers stopped")
        return 130


if __name__ == "__main__":
    sys.exit(main())
