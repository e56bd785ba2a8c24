"""How the Octavia → NLB sync scales with members, pools and LBs (a benchmark, not a test).

    uv run python -m bench.sync_scale            # 1x1x50, 10x1x20, 4x2x100, 10x2x100
    uv run python -m bench.sync_scale --quick    # two tiny sizes, a smoke run (~1 min)
    uv run python -m bench.sync_scale --sizes 10x2x100 --repeats 7

A size `LxPxM` is L load balancers with P pools each and M members per pool, each pool bound
to its own target group. The bench starts the real Octavia v2 API (`devenv.octavia`, temp work
dir) and a moto server on 127.0.0.1, points this process's `OS_*`/`AWS_*` env at them, builds
every LB fully populated in one POST, and drives `OctaviaNlbSyncProvider` in-process as the
provider host would: one `create`/`update` per LB, LBs one after another. Per size it reports

- API calls by kind (Octavia: HTTP requests by method + path template, counted on the
  keystoneauth session; ELBv2: operations, counted with botocore event hooks) and the median
  wall time of the initial sync (`create`), a no-op sync (`update`, nothing changed) and a 1%
  churn sync (about 1% of members swapped in Octavia with batch member PUTs, then `update`);
- the ratio of the no-op sync time to the time of the bare necessary reads (per LB: get LB,
  list members per pool, describe_target_health per target group), measured in the same run,
  interleaved with the no-op syncs, in two ways that treat client construction alike:
  *fresh*: both sides build an openstacksdk connection and a boto3 client per LB with the
  provider's own `octavia.connect`/`elbv2.client` (what each provider call really pays), and
  *reused*: both sides use one warmed connection and client (construction excluded on both);
- where the no-op time goes (timers around the provider's shell functions), and a cProfile of
  the largest no-op sync when the ratio goal fails.

Goals (PASS/FAIL): a no-op sync writes nothing and reads at most 1 + pools + target groups per
LB (plus extra pages of a paged list); reads grow linearly with size; the ratio stays <= 1.5.
A full run also rewrites "Latest figures" in bench/README.md (`--quick` never does).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import datetime
import gc
import io
import os
import pstats
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from bench.calls import CallCounter, Phase, describe_kinds, discovery_of, reads_of, writes_of
from bench.harness import README, ROOT, quiet_libraries, raise_on_sigterm, say, write_figures
from bench.world import (
    VPC_CIDR,
    Addresses,
    Fleet,
    Size,
    churn,
    environment,
    finish_fleet,
    post_lbs,
    sync_all,
)

RATIO_GOAL = 1.5
LINEAR_SPREAD = 1.10  # reads per (LB + pool + target group) may vary this much across sizes
MACHINE_NOTE = "2 CPU cores shared with other engineers' test runs (noisy)"
FULL_SIZES = (Size(1, 1, 50), Size(10, 1, 20), Size(4, 2, 100), Size(10, 2, 100))
QUICK_SIZES = (Size(1, 1, 10), Size(2, 2, 5))

# --------------------------------------------------------------------------------------------
# The two sides of the comparison
# --------------------------------------------------------------------------------------------


def delete_all(fleet: Fleet) -> None:
    from providers.octavia_nlb_sync import OctaviaNlbSyncProvider

    provider = OctaviaNlbSyncProvider()
    with contextlib.redirect_stderr(io.StringIO()):
        for state in fleet.states:
            provider.delete("id", state)
    fleet.states = []


def bare_reads(fleet: Fleet) -> None:
    """The reads a sync cannot do without, and nothing else, with clients made as it makes them.

    Per LB: the provider's own `octavia.connect()` and `elbv2.client()` (so construction, and
    reuse under `reused_clients`, is exactly the provider's), one get LB, one member list per
    pool (all pages) and one describe_target_health per target group.
    """
    from providers.octavia_nlb_sync import elbv2 as elbv2_shell
    from providers.octavia_nlb_sync import octavia as octavia_shell

    for lb_id, bindings in zip(fleet.lb_ids, fleet.bindings, strict=True):
        conn = octavia_shell.connect(None)
        conn.load_balancer.get_load_balancer(lb_id)
        for binding in bindings:
            list(conn.load_balancer.members(binding.pool_id))
        client = elbv2_shell.client(None)
        for binding in bindings:
            client.describe_target_health(TargetGroupArn=binding.target_group_arn)


@contextlib.contextmanager
def reused_clients() -> Iterator[None]:
    """Make `octavia.connect` and `elbv2.client` hand out one warmed connection and client.

    Takes client construction (and openstacksdk's per-connection version discovery) out of
    both sides, leaving only reads, planning and bookkeeping in the comparison.
    """
    from providers.octavia_nlb_sync import elbv2 as elbv2_shell
    from providers.octavia_nlb_sync import octavia as octavia_shell

    real_connect, real_client = octavia_shell.connect, elbv2_shell.client
    conn, client = real_connect(None), real_client(None)
    conn.load_balancer.get_endpoint()  # discovery now, not inside a timed run
    octavia_shell.connect = lambda cloud=None, password=None: conn
    elbv2_shell.client = lambda region=None: client
    try:
        yield
    finally:
        octavia_shell.connect, elbv2_shell.client = real_connect, real_client
        conn.close()


@contextlib.contextmanager
def fresh_clients() -> Iterator[None]:
    """Make every `octavia.connect` and `elbv2.client` call build a new one, as a provider
    host that did not reuse them would (the provider now keeps them for its life)."""
    from providers.octavia_nlb_sync import elbv2 as elbv2_shell
    from providers.octavia_nlb_sync import octavia as octavia_shell

    real_connect, real_client = octavia_shell.connect, elbv2_shell.client

    def connect(cloud: str | None = None, password: str | None = None) -> Any:
        octavia_shell.forget_connections()
        return real_connect(cloud, password)

    def client(region: str | None = None) -> Any:
        elbv2_shell.forget_clients()
        return real_client(region)

    octavia_shell.connect, elbv2_shell.client = connect, client
    try:
        yield
    finally:
        octavia_shell.connect, elbv2_shell.client = real_connect, real_client


def timed(action: Callable[[], object]) -> float:
    """Wall seconds of one run; a collection first so no side inherits the other's garbage."""
    gc.collect()
    began = time.perf_counter()
    action()
    return time.perf_counter() - began


# --------------------------------------------------------------------------------------------
# Measuring one size
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Result:
    size: Size
    create: Phase
    noop: Phase
    churn: Phase
    bare: Phase
    noop_reused: Phase
    bare_reused: Phase
    churned: tuple[int, int, int]
    breakdown: dict[str, float]

    @property
    def ratio(self) -> float:
        return self.noop.median / self.bare.median

    @property
    def ratio_reused(self) -> float:
        return self.noop_reused.median / self.bare_reused.median

    @staticmethod
    def paired(noop: Phase, bare: Phase) -> float:
        """Median of run-by-run ratios: each no-op against the bare run next to it, which
        cancels slow drift in the machine's load better than a ratio of medians."""
        return statistics.median(n / b for n, b in zip(noop.seconds, bare.seconds, strict=True))


def measure(
    fleet: Fleet, counter: CallCounter, conn: Any, addresses: Addresses, repeats: int
) -> Result:
    """Create, no-op (interleaved with bare reads, both client modes) and churn, for one size."""
    say(f"[{fleet.size.label}] create x{max(2, repeats // 2)}")
    create_seconds: list[float] = []
    create_counts: Counter[str] = Counter()
    for rep in range(max(2, repeats // 2)):
        if rep:
            delete_all(fleet)
        with counter.window() as counts:
            create_seconds.append(timed(lambda: sync_all(fleet, first=True)))
        create_counts = create_counts or counts

    say(f"[{fleet.size.label}] no-op vs bare reads x{repeats}, fresh and reused clients")
    modes: dict[str, tuple[Callable[[], contextlib.AbstractContextManager[None]], Phase, Phase]]
    modes = {
        "fresh": (fresh_clients, Phase(Counter(), []), Phase(Counter(), [])),
        "reused": (reused_clients, Phase(Counter(), []), Phase(Counter(), [])),
    }
    for mode, phases in modes.items():
        make_context, noop, bare = phases
        with make_context():
            sync_all(fleet, first=False)  # warm-up, untimed
            bare_reads(fleet)
            for rep in range(repeats):
                # Alternate who goes first so drift in the machine's load hits both sides alike.
                order = [(noop, True), (bare, False)][:: 1 if rep % 2 == 0 else -1]
                for phase, is_sync in order:
                    with counter.window() as counts:
                        if is_sync:
                            phase.seconds.append(timed(lambda: sync_all(fleet, first=False)))
                        else:
                            phase.seconds.append(timed(lambda: bare_reads(fleet)))
                    phase.counts = phase.counts or counts
        say(f"  {mode}: no-op ms {runs_ms(noop.seconds)}; bare ms {runs_ms(bare.seconds)}")

    breakdown = noop_breakdown(fleet, max(3, repeats // 2))

    churn_rounds = max(2, repeats // 2)
    say(f"[{fleet.size.label}] 1% churn x{churn_rounds}")
    churn_phase = Phase(Counter(), [])
    churned = (0, 0, 0)
    for rep in range(churn_rounds):
        churned = churn(conn, fleet, rep, addresses)
        with counter.window() as counts:
            churn_phase.seconds.append(timed(lambda: sync_all(fleet, first=False)))
        churn_phase.counts = churn_phase.counts or counts
        done = Counter[str]()
        for state in fleet.states:
            done.update(state["last_sync"])
        if done != Counter(registered=churned[1], deregistered=churned[0]):
            raise RuntimeError(f"churn sync did {dict(done)}, expected -{churned[0]} +{churned[1]}")
    _, fresh_noop, fresh_bare = modes["fresh"]
    _, reused_noop, reused_bare = modes["reused"]
    return Result(
        fleet.size,
        Phase(create_counts, create_seconds),
        fresh_noop,
        churn_phase,
        fresh_bare,
        reused_noop,
        reused_bare,
        churned,
        breakdown,
    )


BREAKDOWN_PARTS = (
    ("connect", "providers.octavia_nlb_sync.octavia", "connect"),
    ("elbv2 client", "providers.octavia_nlb_sync.elbv2", "client"),
    ("get LB", "providers.octavia_nlb_sync.octavia", "read_pool_ids"),
    ("list members", "providers.octavia_nlb_sync.octavia", "read_members"),
    ("describe TG", "providers.octavia_nlb_sync.elbv2", "list_targets"),
    ("plan", "providers.octavia_nlb_sync.sync", "plan_group"),
    ("log", "pulumi.log", "info"),
)


def noop_breakdown(fleet: Fleet, runs: int) -> dict[str, float]:
    """Median seconds per part of a fresh-client no-op sync, from timers around shell calls.

    The timers add a little overhead of their own, which is why these runs are separate from
    the timed ones; "other" is the rest of the sync (bookkeeping in the provider itself).
    """
    import importlib

    samples: dict[str, list[float]] = {name: [] for name, *_ in BREAKDOWN_PARTS}
    samples["other"] = []
    samples["total"] = []
    for _ in range(runs):
        spent: Counter[str] = Counter()
        originals = []
        for name, module_name, attr in BREAKDOWN_PARTS:
            module = importlib.import_module(module_name)
            real = getattr(module, attr)
            originals.append((module, attr, real))

            def wrapper(
                *args: Any,
                _real: Callable[..., Any] = real,
                _name: str = name,
                _spent: Counter[str] = spent,
                **kwargs: Any,
            ) -> Any:
                began = time.perf_counter()
                try:
                    return _real(*args, **kwargs)
                finally:
                    _spent[_name] += time.perf_counter() - began

            setattr(module, attr, wrapper)
        try:
            total = timed(lambda: sync_all(fleet, first=False))
        finally:
            for module, attr, real in reversed(originals):
                setattr(module, attr, real)
        for name, *_ in BREAKDOWN_PARTS:
            samples[name].append(spent[name])
        samples["other"].append(total - sum(spent.values()))
        samples["total"].append(total)
    return {name: statistics.median(values) for name, values in samples.items()}


def profile_noop(fleet: Fleet, top: int = 25) -> str:
    """cProfile one fresh-client no-op sync; the top costs by cumulative and by own time."""
    profiler = cProfile.Profile()
    profiler.enable()
    sync_all(fleet, first=False)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs()
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


# --------------------------------------------------------------------------------------------
# Goals and report
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Verdict:
    goal: str
    passed: bool
    detail: str

    def line(self) -> str:
        return f"- **{'PASS' if self.passed else 'FAIL'}** {self.goal}: {self.detail}"


def verdicts(results: list[Result]) -> list[Verdict]:
    """The goals, judged on every size."""
    out = []
    writes = {r.size.label: writes_of(r.noop.counts) for r in results}
    out.append(
        Verdict(
            "no-op sync makes 0 writes",
            not any(writes.values()),
            ", ".join(f"{k}: {v}" for k, v in writes.items()),
        )
    )
    over = {
        r.size.label: (reads_of(r.noop.counts), r.size.read_budget)
        for r in results
        if reads_of(r.noop.counts) > r.size.read_budget
    }
    discovery = {r.size.label: discovery_of(r.noop.counts) for r in results}
    out.append(
        Verdict(
            "no-op reads <= LBs x (1 + pools + target groups) (+ extra pages)",
            not over,
            ("over budget: " + ", ".join(f"{k} {a}>{b}" for k, (a, b) in over.items()))
            if over
            else "reads equal the budget at every size"
            + (
                "; not counted: 1 version-discovery `GET /` per fresh openstacksdk connection "
                f"(one per LB per sync: {', '.join(f'{k} {v}' for k, v in discovery.items())})"
                if any(discovery.values())
                else ""
            ),
        )
    )
    for phase in ("create", "noop", "churn"):
        per_unit = {
            r.size.label: reads_of(getattr(r, phase).counts) / (r.size.lbs + 2 * r.size.total_pools)
            for r in results
        }
        spread = max(per_unit.values()) / min(per_unit.values())
        out.append(
            Verdict(
                f"{phase} reads grow linearly with size",
                spread <= LINEAR_SPREAD,
                "reads per (LB + pool + target group): "
                + ", ".join(f"{k} {v:.2f}" for k, v in per_unit.items())
                + f" (spread {spread:.2f}, limit {LINEAR_SPREAD:.2f})",
            )
        )
    for label, attr in (("fresh clients", "ratio"), ("reused clients", "ratio_reused")):
        ratios = {r.size.label: getattr(r, attr) for r in results}
        out.append(
            Verdict(
                f"no-op time / bare reads time <= {RATIO_GOAL} ({label})",
                all(v <= RATIO_GOAL for v in ratios.values()),
                ", ".join(f"{k} {v:.2f}" for k, v in ratios.items()),
            )
        )
    return out


def runs_ms(seconds: list[float]) -> str:
    """`median 123 (runs 120 130 ...)`: the spread shows how noisy the machine was."""
    runs = " ".join(f"{s * 1e3:.0f}" for s in seconds)
    return f"median {statistics.median(seconds) * 1e3:.0f} (runs {runs})"


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.0f}"


def tables(results: list[Result], repeats: int) -> str:
    """Markdown: calls and times per phase, the ratio table, and the no-op time breakdown."""
    lines = [
        "| size (LBsxPOOLSxMEMBERS) | members | phase | calls by kind | reads | writes "
        "| read budget | wall ms (median) | ms / 100 members |",
        "|---|---:|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        for name, phase in (("create", r.create), ("no-op", r.noop), ("1% churn", r.churn)):
            note = name
            if name == "1% churn":
                note += f" (-{r.churned[0]} +{r.churned[1]} in {r.churned[2]} pools)"
            lines.append(
                f"| {r.size.label} | {r.size.total_members:,} | {note} "
                f"| {describe_kinds(phase.counts)} | {reads_of(phase.counts)} "
                f"| {writes_of(phase.counts)} | {r.size.read_budget} | {ms(phase.median)} "
                f"| {phase.median * 1e3 * 100 / r.size.total_members:,.1f} |"
            )
    lines += [
        "",
        f"No-op sync vs bare necessary reads (median of {repeats}, interleaved):",
        "",
        "| size | no-op ms (fresh) | bare ms (fresh) | ratio (fresh) | paired (fresh) "
        "| no-op ms (reused) | bare ms (reused) | ratio (reused) | paired (reused) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.size.label} | {ms(r.noop.median)} | {ms(r.bare.median)} | {r.ratio:.2f} "
            f"| {Result.paired(r.noop, r.bare):.2f} "
            f"| {ms(r.noop_reused.median)} | {ms(r.bare_reused.median)} "
            f"| {r.ratio_reused:.2f} | {Result.paired(r.noop_reused, r.bare_reused):.2f} |"
        )
    lines += [
        "",
        "ratio = median no-op / median bare (the goal); paired = median of the run-by-run "
        "ratios (a cross-check against load drift).",
    ]
    parts = [name for name, *_ in BREAKDOWN_PARTS] + ["other", "total"]
    lines += [
        "",
        "Where a fresh-client no-op sync spends its time (median ms, timers around the "
        "provider's shell calls):",
        "",
        "| size | " + " | ".join(parts) + " |",
        "|---|" + "---:|" * len(parts),
    ]
    for r in results:
        lines.append(f"| {r.size.label} | " + " | ".join(ms(r.breakdown[p]) for p in parts) + " |")
    lines += [
        "",
        "Kinds: `lb` = Octavia `GET /v2/lbaas/loadbalancers/{id}`, `mem` = Octavia "
        "`GET /v2/lbaas/pools/{id}/members`, `disc` = Octavia `GET /` (openstacksdk version "
        "discovery, once per new connection), `DTH` / `Reg` / `Dereg` = ELBv2 "
        "DescribeTargetHealth / RegisterTargets / DeregisterTargets.",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def run(sizes: tuple[Size, ...], repeats: int, write_readme: bool, force_profile: bool) -> int:
    """Start the servers, build every size's LBs, measure each size, report, clean up."""
    import boto3
    import openstack

    started = time.perf_counter()
    load_before = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    counter = CallCounter()
    addresses = Addresses()
    with contextlib.ExitStack() as stack:
        say("starting Octavia and moto ...")
        octavia_up, moto_up = environment(stack)
        say(f"  Octavia up in {octavia_up:.1f} s, moto in {moto_up:.1f} s")
        stack.enter_context(counter.hooked())
        conn = openstack.connect()
        stack.callback(conn.close)
        elb = boto3.client("elbv2")
        vpc_id = boto3.client("ec2").create_vpc(CidrBlock=VPC_CIDR)["Vpc"]["VpcId"]
        project_id = uuid.uuid4().hex

        build_began = time.perf_counter()
        say(
            f"building {sum(s.lbs for s in sizes)} LBs, "
            f"{sum(s.total_members for s in sizes):,} members ..."
        )
        posted = [(size, post_lbs(conn, size, project_id, addresses)) for size in sizes]
        fleets = [finish_fleet(conn, elb, vpc_id, size, ids) for size, ids in posted]
        build_seconds = time.perf_counter() - build_began
        say(f"  built in {build_seconds:.0f} s")

        results = [measure(fleet, counter, conn, addresses, repeats) for fleet in fleets]
        checks = verdicts(results)
        ratio_failed = not all(c.passed for c in checks if "bare reads" in c.goal)
        profile_text = ""
        if ratio_failed or force_profile:
            say(f"[{fleets[-1].size.label}] cProfile of a fresh-client no-op sync")
            profile_text = profile_noop(fleets[-1])

    total = time.perf_counter() - started
    today = datetime.date.today().isoformat()
    body = "\n".join(
        [
            f"{today} · {MACHINE_NOTE}, load average {load_before} at start, "
            f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} at end · "
            f"sizes {', '.join(s.label for s in sizes)} · "
            f"{repeats} repeats · bench total {total / 60:.1f} min "
            f"(LB build {build_seconds:.0f} s)",
            "",
            tables(results, repeats),
            "",
            "Goals:",
            "",
            *(c.line() for c in checks),
        ]
    )
    print(body)
    if profile_text:
        print("\ncProfile of one fresh-client no-op sync, largest size:\n")
        print(profile_text)
    if write_readme:
        write_figures("sync_scale", body)
        say(f"wrote {README.relative_to(ROOT)}")
    say(f"total {total:.0f} s")
    return 0 if all(c.passed for c in checks) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two tiny sizes, a smoke run")
    parser.add_argument("--sizes", type=Size.parse, nargs="+", metavar="LxPxM")
    parser.add_argument("--repeats", type=int, help="timed runs per median (default 5)")
    parser.add_argument("--profile", action="store_true", help="cProfile the no-op even on PASS")
    parser.add_argument("--no-readme", action="store_true", help="do not rewrite bench/README.md")
    args = parser.parse_args(argv)
    sizes = tuple(args.sizes or (QUICK_SIZES if args.quick else FULL_SIZES))
    repeats = args.repeats or 5
    quiet_libraries()
    raise_on_sigterm()
    try:
        return run(sizes, repeats, not (args.quick or args.no_readme), args.profile)
    except KeyboardInterrupt:
        say("interrupted: servers stopped, temp dirs removed")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
