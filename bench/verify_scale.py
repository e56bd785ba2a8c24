"""`tools.verify` on the prod stack's outputs, against the local servers (a benchmark, not a test).

    uv run python -m bench.verify_scale                 # 5 repeats; rewrites the figures
    uv run python -m bench.verify_scale --repeats 3 --no-readme
    uv run python -m bench.verify_scale --table         # also print the last verify table

The world is prod's, as `tests/snapshots/prod.json` records its outputs, built for real on
127.0.0.1 (`tests/fixtures/verify_world.py`): the three load balancers in the real Octavia v2
API (shop: TCP and UDP 443, 4 members each; api: 3 members, one at weight 0; game-gw: TCP and
UDP 7000, 8 members each), each with its NLB twin, target groups filled by the real sync, and
weighted records and health checks in moto; the five clusters (A, A-eks, B, C, G) as local
Kubernetes clusters, the six Prods' Deployments, PDBs and HPAs on A, B and C; an edge proxy
(the real HAProxy) on A, B and C routing prod's five segments to one small process per Prod,
found through each cluster's `edge-proxy` Service; a real Prometheus with the Prods' rules and
samples. The outputs are prod's with the live ids, endpoints and kubeconfigs. moto runs in a
process of its own, as AWS would (in the bench's process it would share verify's GIL).

Every API call verify makes goes through its meter, which here adds `--delay-ms` (20) before
each: the same round trip for AWS, Octavia, Kubernetes (HTTPS), the proxies and Prometheus
(`bench/sync_noop.py` adds it in an HTTP proxy in front of Octavia and moto; a proxy cannot
reach into the clusters' TLS).

Runs rotate between one read at a time and 16 at a time with the delay, and 16 at a time
without it (the baseline: verify's own work, on a machine that is shared and noisy), each with
fresh clients, after one untimed run. The ratio of the first two is the figure; the CPU of
two shared cores bounds it, so the goal is on what the delay adds to the baseline.

Goals (PASS/FAIL): every check green; both modes make the same calls; the concurrent run adds
at most a quarter of the sequential round trips (calls x delay) to its baseline. A full run
rewrites the "verify_scale" figures in bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.sync_scale import ROOT, environment, quiet_libraries, raise_on_sigterm, say

README = Path(__file__).resolve().parent / "README.md"
BEGIN, END = "<!-- verify_scale:begin -->", "<!-- verify_scale:end -->"
SNAPSHOT = ROOT / "tests" / "snapshots" / "prod.json"
CONCURRENT = 16
HIDDEN_GOAL = 0.25
"""Concurrent reads must hide at least 75% of the round trips a sequential run waits for."""
LBS: Mapping[str, tuple[tuple[tuple[str, int], ...], int, tuple[int, int]]] = {
    # name: ((protocol, port) listeners, members per pool, (octavia, nlb) weights)
    "shop": ((("TCP", 443), ("UDP", 443)), 4, (90, 10)),
    "api": ((("TCP", 443),), 3, (80, 20)),
    "game-gw": ((("TCP", 7000), ("UDP", 7000)), 8, (90, 10)),
}
VERSION = "2.3.1"
REQUESTS = ('http_requests_total{code="200"} 1200', 'http_requests_total{code="500"} 3')


@dataclass
class Mode:
    workers: int
    delay: float
    """Seconds added to each API call; 0 for the baseline (verify's own work, no round trip)."""
    seconds: list[float] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def label(self) -> str:
        return f"{self.workers} at a time, {self.delay * 1000:g} ms per call"


def post_lb(conn: Any, project_id: str, name: str, index: int) -> str:
    """An Octavia LB shaped like prod's `name`, in one POST."""
    listeners, members, _ = LBS[name]
    addresses = [f"172.17.{index}.{i + 10}" for i in range(members)]
    weight_zero = {addresses[-1]} if name == "api" else set()

    def member(address: str) -> dict[str, Any]:
        return {
            "address": address,
            "protocol_port": 8443,
            "weight": 0 if address in weight_zero else 1,
        }

    body = {
        "name": name,
        "project_id": project_id,
        "vip_subnet_id": str(uuid.uuid4()),
        "listeners": [
            {
                "protocol": protocol,
                "protocol_port": port,
                "default_pool": {
                    "name": f"{name}-{protocol.lower()}-{port}",
                    "protocol": protocol,
                    "lb_algorithm": "ROUND_ROBIN",
                    "members": [member(a) for a in addresses],
                },
            }
            for protocol, port in listeners
        ],
    }
    response = conn.load_balancer.post("/lbaas/loadbalancers", json={"loadbalancer": body})
    if response.status_code != 201:
        raise RuntimeError(f"creating LB {name}: {response.status_code} {response.text}")
    return str(response.json()["loadbalancer"]["id"])


def build(stack: contextlib.ExitStack, workdir: Path) -> tuple[dict[str, Any], str]:
    """The prod-shaped world; returns its outputs and the Prometheus URL."""
    import boto3
    import openstack

    from devenv.kube import LocalFleet
    from tests.fixtures.octavia import wait_lb_active
    from tests.fixtures.prometheus import running
    from tests.fixtures.verify_world import (
        cluster_outputs,
        deploy_prod,
        edge_service,
        hosted_zone,
        running_edges,
        twin,
    )

    prod = json.loads(SNAPSHOT.read_text())["outputs"]
    conn = openstack.connect()
    # prod's clouds.yaml entry, here naming the local Octavia: verify connects as for prod.
    clouds = workdir / "clouds.yaml"
    clouds.write_text(
        f"clouds:\n  {prod['openstackCloud']}:\n    auth_type: none\n"
        f"    load_balancer_endpoint_override: {os.environ['OS_LOAD_BALANCER_ENDPOINT_OVERRIDE']}\n"
    )
    os.environ["OS_CLIENT_CONFIG_FILE"] = str(clouds)  # the bench's env is restored on exit
    aws = {s: boto3.client(s, region_name=prod["awsRegion"]) for s in ("elbv2", "ec2", "route53")}
    vpc = aws["ec2"].create_vpc(CidrBlock="10.10.0.0/16")["Vpc"]["VpcId"]
    zone = hosted_zone(aws["route53"])
    say("building prod's three load balancers in Octavia, their twins, syncs and records")
    project = uuid.uuid4().hex
    ids = {name: post_lb(conn, project, name, i) for i, name in enumerate(LBS)}
    lbs = {}
    for name, lb_id in ids.items():
        wait_lb_active(conn, lb_id, timeout=300)
        lbs[name] = twin(conn, aws, vpc, zone, name, lb_id, LBS[name][2])
    say(f"starting the local clusters {', '.join(prod['clusters'])}")
    fleet = stack.enter_context(LocalFleet(workdir / "kube")).start(list(prod["clusters"]))
    placed = {p: spec["cluster"] for p, spec in prod["prods"].items()}
    for name, cluster in placed.items():
        deploy_prod(fleet[cluster], name, VERSION, wait=False)
    routing = prod["routing"]["segments"]
    segments = {s: [r["prod"] for r in t["routes"]] for s, t in routing.items()}
    fallbacks = {s: [r["prod"] for r in t["fallbacks"]] for s, t in routing.items()}
    say("starting the Prods and an edge proxy (HAProxy) on each cluster that hosts one")
    (workdir / "edges").mkdir()
    edges = stack.enter_context(
        running_edges(
            workdir / "edges", segments, fallbacks, placed, prod["edge"]["defaultSegment"]
        )
    )
    for cluster, edge in edges.edges.items():
        edge_service(fleet[cluster], edge.port)
    say("starting Prometheus with the Prods' rules and samples")
    (workdir / "prometheus").mkdir()
    prometheus = stack.enter_context(running(workdir / "prometheus", tuple(placed)))
    prometheus.load_rules(placed)
    prometheus.serve({p: REQUESTS for p in placed})
    kinds = {n: c["kind"] for n, c in prod["clusters"].items()}
    outputs = {
        **prod,
        "loadBalancers": {name: lb.outputs for name, lb in lbs.items()},
        **cluster_outputs(fleet),
        **edges.outputs(),
    }
    for name, cluster in outputs["clusters"].items():
        cluster["kind"] = kinds[name]
    return outputs, prometheus.url


def moto_process(stack: contextlib.ExitStack) -> str:
    """moto in a process of its own, as AWS is: in the bench's process its request handling
    would take the GIL from verify's threads, which a remote API never does."""
    import subprocess

    from devenv.processes import free_port, stop

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    stack.callback(stop, server)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            urllib.request.urlopen(f"{url}/moto-api/", timeout=2).close()
            return url
        time.sleep(0.2)
    raise RuntimeError("moto_server did not answer within 60 s")


def once(outputs: Mapping[str, Any], prometheus: str, workers: int, delay: float) -> Any:
    from tools.verify import verify
    from tools.verify.context import Context
    from tools.verify.outputs import parse
    from tools.verify.runner import Meter

    meter = Meter(delay=delay)
    ctx = Context(parse(outputs), meter=meter, prometheus=(prometheus,))
    began = time.perf_counter()
    rows = verify(ctx, workers=workers)
    return time.perf_counter() - began, rows, meter.counts


def settle(outputs: Mapping[str, Any], prometheus: str) -> list[Any]:
    """Until the world is whole (Deployments rolled out, Service addresses given)."""
    deadline = time.monotonic() + 180
    while True:
        _, rows, _ = once(outputs, prometheus, CONCURRENT, 0.0)
        if all(r.green for r in rows) or time.monotonic() > deadline:
            return list(rows)
        time.sleep(1)


def measure(
    outputs: Mapping[str, Any], prometheus: str, repeats: int, delay: float
) -> tuple[dict[str, Mode], list[Any]]:
    """The runs of each mode interleaved, in an order that rotates each repeat."""
    modes = {
        "sequential": Mode(1, delay),
        "concurrent": Mode(CONCURRENT, delay),
        "baseline": Mode(CONCURRENT, 0.0),
    }
    names = list(modes)
    last: list[Any] = []
    for rep in range(repeats):
        for name in names[rep % 3 :] + names[: rep % 3]:
            mode = modes[name]
            seconds, rows, counts = once(outputs, prometheus, mode.workers, mode.delay)
            mode.seconds.append(seconds)
            mode.counts = mode.counts or counts
            if not all(r.green for r in rows):
                raise RuntimeError(f"a check is not green: {[r for r in rows if not r.green]}")
            last = list(rows)
        say(
            f"  run {rep + 1}: " + ", ".join(f"{n} {m.seconds[-1]:.2f} s" for n, m in modes.items())
        )
    return modes, last


def report(
    modes: Mapping[str, Mode], delay_ms: float, repeats: int, started: str
) -> tuple[str, list[str]]:
    sequential, concurrent, baseline = modes["sequential"], modes["concurrent"], modes["baseline"]
    ratio = sequential.median / concurrent.median
    paired = statistics.median(
        s / c for s, c in zip(sequential.seconds, concurrent.seconds, strict=True)
    )
    calls = sum(concurrent.counts.values())
    round_trips = calls * delay_ms / 1000
    added = concurrent.median - baseline.median
    by_kind = " · ".join(f"{k} {n}" for k, n in sorted(concurrent.counts.items()))
    lines = [
        f"{started} · {os.cpu_count()} CPU cores (shared, noisy) · prod's outputs (3 LBs, 5 "
        f"clusters, 6 Prods, 5 segments through 3 proxies) · median of {repeats}",
        "",
        "| run | API calls | median s | fastest s | slowest s |",
        "|---|---:|---:|---:|---:|",
    ]
    for mode in modes.values():
        lines.append(
            f"| {mode.label} | {sum(mode.counts.values())} | {mode.median:.2f} "
            f"| {min(mode.seconds):.2f} | {max(mode.seconds):.2f} |"
        )
    lines += [
        "",
        f"sequential / concurrent: {ratio:.1f}x (paired median {paired:.1f}x). Of the "
        f"{round_trips:.2f} s of round trips ({calls} x {delay_ms:g} ms), the concurrent run "
        f"adds {added:.2f} s to its baseline (verify's own work with no delay).",
        "",
        f"API calls by kind: {by_kind}",
    ]
    verdicts = [
        f"{'PASS' if sequential.counts == concurrent.counts else 'FAIL'} both modes make the same "
        f"{calls} API calls",
        f"{'PASS' if added <= HIDDEN_GOAL * round_trips else 'FAIL'} concurrent reads add "
        f"{added:.2f} s for {round_trips:.2f} s of round trips (goal: at most "
        f"{HIDDEN_GOAL:.0%} of them)",
    ]
    return "\n".join(lines), verdicts


def run(repeats: int, delay_ms: float, write_readme: bool, show_table: bool) -> int:
    from tools.verify.report import table

    quiet_libraries()
    raise_on_sigterm()
    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    with contextlib.ExitStack() as stack:
        environment(stack)
        os.environ["AWS_ENDPOINT_URL"] = moto_process(stack)  # restored with the environment
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="verify-scale-")))
        outputs, prometheus = build(stack, workdir)
        say("waiting until every check is green (rollouts, load-balancer addresses)")
        rows = settle(outputs, prometheus)
        if not all(r.green for r in rows):
            print(table(rows))
            say("the world never turned green; not measuring")
            return 1
        say(
            f"measuring: sequential and {CONCURRENT} at a time, x{repeats}, "
            f"{delay_ms:g} ms per call"
        )
        modes, last = measure(outputs, prometheus, repeats, delay_ms / 1000)
    body, verdicts = report(modes, delay_ms, repeats, started)
    print(body)
    print("\n".join(verdicts))
    if show_table:
        print()
        print(table(last))
    if write_readme:
        update_readme_section(body + "\n\n" + "\n".join(f"- {v}" for v in verdicts))
        say(f"wrote the figures into {README.relative_to(ROOT)}")
    return 0 if all(v.startswith("PASS") for v in verdicts) else 1


def update_readme_section(body: str) -> None:
    text = README.read_text()
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    README.write_text(f"{head}{BEGIN}\n{body}\n{END}{tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--delay-ms", type=float, default=20.0)
    parser.add_argument("--no-readme", action="store_true")
    parser.add_argument("--table", action="store_true", help="print the last verify table too")
    args = parser.parse_args(argv)
    try:
        return run(args.repeats, args.delay_ms, not args.no_readme, args.table)
    except KeyboardInterrupt:
        say("interrupted; servers stopped")
        return 130


if __name__ == "__main__":
    sys.exit(main())
