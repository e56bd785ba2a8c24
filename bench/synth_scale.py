"""How synth time and memory grow with the number of hybrid load balancers (not a test).

    uv run python -m bench.synth_scale                 # 10, 50, 200, 500 LBs
    uv run python -m bench.synth_scale --sizes 10 200  # a subset
    uv run python -m bench.synth_scale --profile 200   # cProfile one size, top costs

Each size runs in a fresh subprocess so sizes share neither memory nor warm imports. The stack
config is generated in memory from the shapes in Pulumi.prod.yaml (created LBs with two
listeners and a few members, weighted DNS, the prod clusters and Prods) and fed through
`synthesize(config=...)`, the same door the tests use. Per size it reports:

- cold: the first synth in the process, including the lazy provider-SDK imports it triggers;
- warm: a second synth of the same config in the same process (the program's own cost);
- peak RSS of the process (`ru_maxrss`), and the growth ratio of warm time per LB vs size 10.

The goal is linear growth, and 200 LBs under 15 s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import ipaddress
import json
import os
import pstats
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

NS = "hybrid-infra:"
SIZES = (10, 50, 200, 500)
MEMBERS_PER_POOL = 3
FIRST_MEMBER = ipaddress.IPv4Address("172.17.0.1")


def load_balancer(index: int, template: dict[str, Any]) -> dict[str, Any]:
    """A created LB shaped like prod's `shop` (TCP+UDP on 443): its own name, IPs, record."""
    name = f"lb-{index:04d}"
    lb = copy.deepcopy(template)
    lb["name"] = name
    lb["dns"]["record"] = name
    for listener in lb["create"]["listeners"]:
        listener["pool"]["members"] = [
            {"address": str(FIRST_MEMBER + index * MEMBERS_PER_POOL + m), "port": 8443}
            for m in range(MEMBERS_PER_POOL)
        ]
    return lb


def stack_with(count: int) -> tuple[dict[str, str], list[str]]:
    """Prod's config with `count` generated LBs in place of its three (clusters, Prods kept)."""
    from tools.synth import stack_config

    config, secret_keys = stack_config("prod")
    lbs = json.loads(config[NS + "loadBalancers"])
    shop = next(lb for lb in lbs if lb["name"] == "shop")
    config[NS + "loadBalancers"] = json.dumps([load_balancer(i, shop) for i in range(count)])
    return config, secret_keys


def measure(count: int) -> dict[str, Any]:
    """One size, in this process: cold synth, warm synth, peak RSS."""
    started = time.perf_counter()
    from tools.synth import synthesize

    imported = time.perf_counter()
    config, secret_keys = stack_with(count)
    cold_start, cold_cpu = time.perf_counter(), time.process_time()
    first = synthesize("prod", config=config, secret_keys=secret_keys)
    cold, cold_cpu = time.perf_counter() - cold_start, time.process_time() - cold_cpu
    warm_start, warm_cpu = time.perf_counter(), time.process_time()
    second = synthesize("prod", config=config, secret_keys=secret_keys)
    warm, warm_cpu = time.perf_counter() - warm_start, time.process_time() - warm_cpu
    assert len(first.resources) == len(second.resources)
    return {
        "lbs": count,
        "resources": len(first.resources),
        "import_s": imported - started,
        "cold_s": cold,
        "warm_s": warm,
        "cold_cpu_s": cold_cpu,
        "warm_cpu_s": warm_cpu,
        "load_1min": os.getloadavg()[0],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def profile(count: int, top: int = 25) -> None:
    """cProfile one cold synth of `count` LBs; print the top costs by cumulative and own time."""
    from tools.synth import synthesize

    config, secret_keys = stack_with(count)
    profiler = cProfile.Profile()
    profiler.enable()
    synthesize("prod", config=config, secret_keys=secret_keys)
    profiler.disable()
    stats = pstats.Stats(profiler).strip_dirs()
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)


def run_isolated(count: int) -> dict[str, Any]:
    """Measure one size in a fresh interpreter, so sizes share no memory and no warm imports."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.synth_scale", "--one", str(count)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"size {count} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(rows: list[dict[str, Any]]) -> str:
    """The figures, plus warm time per LB relative to the smallest size (1.00 = linear).

    Wall and CPU are both shown: on a shared machine wall time swings with other load (the
    1-minute load average is in the last column), CPU time much less.
    """
    base_wall = rows[0]["warm_s"] / rows[0]["lbs"]
    base_cpu = rows[0]["warm_cpu_s"] / rows[0]["lbs"]
    lines = [
        f"{'LBs':>5} {'resources':>9} {'import s':>8} {'cold s':>7} {'warm s':>7} "
        f"{'warm cpu':>8} {'ms/LB':>6} {'growth':>6} {'cpu growth':>10} {'peak RSS MB':>11} "
        f"{'load':>5}"
    ]
    for row in rows:
        per_lb = row["warm_s"] / row["lbs"]
        cpu_per_lb = row["warm_cpu_s"] / row["lbs"]
        lines.append(
            f"{row['lbs']:>5} {row['resources']:>9} {row['import_s']:>8.2f} {row['cold_s']:>7.2f} "
            f"{row['warm_s']:>7.2f} {row['warm_cpu_s']:>8.2f} {per_lb * 1000:>6.1f} "
            f"{per_lb / base_wall:>6.2f} {cpu_per_lb / base_cpu:>10.2f} "
            f"{row['peak_rss_mb']:>11.0f} {row['load_1min']:>5.1f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--profile", type=int, metavar="LBS", help="cProfile one size")
    args = parser.parse_args(argv)
    if args.one is not None:
        print(json.dumps(measure(args.one)))
        return 0
    if args.profile is not None:
        profile(args.profile)
        return 0
    rows = []
    for count in args.sizes:
        print(f"  {count} LBs: cold and warm synth in a fresh process...", file=sys.stderr)
        rows.append(run_isolated(count))
        print(f"  {count} LBs done: warm {rows[-1]['warm_s']:.2f} s", file=sys.stderr)
    print(table(rows))
    verdicts = goals(rows)
    print("\n".join(verdicts))
    return 0 if all(v.startswith("PASS") for v in verdicts) else 1


COLD_GOAL_S = 15.0
GOAL_LBS = 200
GROWTH_LIMIT = 1.10


def goals(rows: list[dict[str, Any]]) -> list[str]:
    """200 LBs cold under 15 s; warm time and memory per LB flat across sizes (linear)."""
    lines = []
    for row in rows:
        if row["lbs"] == GOAL_LBS:
            ok = row["cold_s"] < COLD_GOAL_S
            lines.append(
                f"{'PASS' if ok else 'FAIL'} {GOAL_LBS} LBs cold synth {row['cold_s']:.1f} s "
                f"(goal < {COLD_GOAL_S:g} s)"
            )
    if len(rows) > 1:
        base = rows[0]["warm_cpu_s"] / rows[0]["lbs"]
        growth = max(r["warm_cpu_s"] / r["lbs"] / base for r in rows)
        ok = growth <= GROWTH_LIMIT
        lines.append(
            f"{'PASS' if ok else 'FAIL'} warm CPU per LB grows at most {growth:.2f}x from "
            f"{rows[0]['lbs']} to {rows[-1]['lbs']} LBs (limit {GROWTH_LIMIT:.2f}x: linear)"
        )
        first, last = rows[0], rows[-1]
        per_lb = (last["peak_rss_mb"] - first["peak_rss_mb"]) / (last["lbs"] - first["lbs"])
        span = f"{first['lbs']} to {last['lbs']}"
        lines.append(f"INFO peak RSS grows {per_lb:.1f} MB per LB ({span} LBs)")
    return lines


if __name__ == "__main__":
    raise SystemExit(main())
