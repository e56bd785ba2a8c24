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
import logging
import math
import os
import pstats
import random
import re
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

README = Path(__file__).resolve().parent / "README.md"
REGION = "eu-west-1"
VPC_CIDR = "10.10.0.0/16"
FIRST_MEMBER = IPv4Address("172.16.0.1")  # outside the VPC: on-prem members, zone "all"
LISTENER_PORTS = (443, 80, 8443, 8080)
MEMBER_PORT = 8443
OCTAVIA_PAGE_LIMIT = 1000  # Octavia's default [api_settings] pagination_max_limit
RATIO_GOAL = 1.5
CHURN_FRACTION = 0.01
LINEAR_SPREAD = 1.10  # reads per (LB + pool + target group) may vary this much across sizes
WAIT_SECONDS = 600
UUID = re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}", re.I)
MACHINE_NOTE = "2 CPU cores shared with other engineers' test runs (noisy)"

# Short names for the call kinds in the table; anything else is shown in full.
KIND_ALIASES = {
    "os GET /": "disc",
    "os GET /lbaas/loadbalancers/{id}": "lb",
    "os GET /lbaas/pools/{id}/members": "mem",
    "elbv2 DescribeTargetHealth": "DTH",
    "elbv2 RegisterTargets": "Reg",
    "elbv2 DeregisterTargets": "Dereg",
}
ELBV2_WRITES = {"RegisterTargets", "DeregisterTargets"}


@dataclass(frozen=True, slots=True)
class Size:
    """`lbs` load balancers x `pools` pools each x `members` members per pool."""

    lbs: int
    pools: int
    members: int

    @property
    def label(self) -> str:
        return f"{self.lbs}x{self.pools}x{self.members}"

    @property
    def total_pools(self) -> int:
        return self.lbs * self.pools

    @property
    def total_members(self) -> int:
        return self.total_pools * self.members

    @property
    def read_budget(self) -> int:
        """1 LB read + member pages per pool + 1 describe per target group, for every LB."""
        pages = max(1, math.ceil(self.members / OCTAVIA_PAGE_LIMIT))
        return self.lbs * (1 + self.pools * pages + self.pools)

    @classmethod
    def parse(cls, text: str) -> Size:
        lbs, pools, members = (int(part) for part in text.lower().split("x"))
        if lbs < 1 or not 1 <= pools <= len(LISTENER_PORTS) or members < 2:
            raise argparse.ArgumentTypeError(f"bad size {text!r}: want LxPxM, P <= 4, M >= 2")
        return cls(lbs, pools, members)


FULL_SIZES = (Size(1, 1, 50), Size(10, 1, 20), Size(4, 2, 100), Size(10, 2, 100))
QUICK_SIZES = (Size(1, 1, 10), Size(2, 2, 5))


# --------------------------------------------------------------------------------------------
# Counting API calls
# --------------------------------------------------------------------------------------------


class CallCounter:
    """Counts API calls by kind while a window is open; setup traffic outside it is ignored.

    Octavia is counted on keystoneauth's `Session.request` (every openstacksdk request, version
    discovery included, goes through it); ELBv2 on each client's `provide-client-params` event.
    Both hooks stay installed for the whole run, so synced and bare reads pay the same for them.
    """

    def __init__(self) -> None:
        self._current: Counter[str] | None = None
        self._lock = threading.Lock()  # a sync reads from several threads at once

    @contextlib.contextmanager
    def window(self) -> Iterator[Counter[str]]:
        counts: Counter[str] = Counter()
        self._current = counts
        try:
            yield counts
        finally:
            self._current = None

    def add(self, kind: str) -> None:
        with self._lock:
            if self._current is not None:
                self._current[kind] += 1

    @contextlib.contextmanager
    def hooked(self) -> Iterator[None]:
        """Patch the keystoneauth session and the provider's ELBv2 client factory; undo after."""
        from keystoneauth1 import session as ks_session

        from providers.octavia_nlb_sync import elbv2 as elbv2_shell

        real_request = ks_session.Session.request
        real_client = elbv2_shell.client

        def request(session: Any, url: str, method: str, *args: Any, **kwargs: Any) -> Any:
            self.add(octavia_kind(method, url, kwargs.get("params")))
            return real_request(session, url, method, *args, **kwargs)

        hooked: set[int] = set()

        def client(region: str | None = None) -> Any:
            made = real_client(region)
            if id(made) not in hooked:  # the provider reuses its clients: hook each once
                hooked.add(id(made))
                made.meta.events.register(
                    "provide-client-params.elastic-load-balancing-v2.*",
                    lambda model, **_: self.add(f"elbv2 {model.name}"),
                )
            return made

        ks_session.Session.request = request  # type: ignore[method-assign]
        elbv2_shell.client = client
        try:
            yield
        finally:
            ks_session.Session.request = real_request  # type: ignore[method-assign]
            elbv2_shell.client = real_client


def octavia_kind(method: str, url: str, params: Any) -> str:
    """`GET /lbaas/pools/{id}/members?marker`: method, path with IDs folded, query keys."""
    parts = urlsplit(url)
    path = "/" + (parts.path if "://" in url else url.split("?", 1)[0]).strip("/")
    path = path.removeprefix("/v2").removeprefix("/v2.0") or "/"
    path = UUID.sub("{id}", path)
    keys = sorted({*parse_qs(parts.query), *(params or {})})
    return f"os {method.upper()} {path}" + (f"?{'&'.join(keys)}" if keys else "")


def reads_of(counts: Counter[str]) -> int:
    """Resource reads: Octavia GETs except version discovery, plus ELBv2 describes."""
    return sum(
        n
        for kind, n in counts.items()
        if (kind.startswith("os GET ") and kind != "os GET /") or kind.startswith("elbv2 Desc")
    )


def discovery_of(counts: Counter[str]) -> int:
    return counts.get("os GET /", 0)


def writes_of(counts: Counter[str]) -> int:
    return sum(
        n
        for kind, n in counts.items()
        if kind.removeprefix("elbv2 ") in ELBV2_WRITES
        or (kind.startswith("os ") and not kind.startswith("os GET"))
    )


def describe_kinds(counts: Counter[str]) -> str:
    """`lb 10 · mem 20 · disc 10 · DTH 20` in a fixed order, unknown kinds in full."""
    order = list(KIND_ALIASES)
    shown = [f"{KIND_ALIASES[k]} {counts[k]}" for k in order if counts.get(k)]
    shown += [f"{k} {n}" for k, n in sorted(counts.items()) if k not in KIND_ALIASES]
    return " · ".join(shown) or "none"


# --------------------------------------------------------------------------------------------
# The environment: Octavia, moto, and the env vars that point the SDKs at them
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def patched_env(values: dict[str, str], drop_prefixes: tuple[str, ...]) -> Iterator[None]:
    """Set `values`, drop every var with one of `drop_prefixes`; restore the env afterwards."""
    saved = dict(os.environ)
    for name in list(os.environ):
        if name.startswith(drop_prefixes):
            del os.environ[name]
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def environment(stack: contextlib.ExitStack) -> tuple[float, float]:
    """Start Octavia (temp work dir) and moto, point OS_*/AWS_* at them; return startup times.

    Everything is registered on the caller's ExitStack, so Ctrl-C (or SIGTERM) anywhere stops
    both servers, restores the env and removes the work dir.
    """
    from moto.server import ThreadedMotoServer

    from devenv.octavia import OctaviaServer

    workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="sync-scale-"))
    began = time.perf_counter()
    server = stack.enter_context(OctaviaServer(Path(workdir) / "octavia"))
    octavia_up = time.perf_counter() - began
    began = time.perf_counter()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    stack.callback(moto.stop)
    host, port = moto.get_host_and_port()
    moto_up = time.perf_counter() - began
    assert server.endpoint is not None
    stack.enter_context(
        patched_env(
            {
                "OS_AUTH_TYPE": "none",
                "OS_LOAD_BALANCER_ENDPOINT_OVERRIDE": server.endpoint,
                "AWS_ENDPOINT_URL": f"http://{host}:{port}",
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": REGION,
                "AWS_REGION": REGION,
            },
            drop_prefixes=("OS_", "AWS_PROFILE", "AWS_SESSION_TOKEN"),
        )
    )
    return octavia_up, moto_up


def quiet_libraries() -> None:
    """Library chatter (SDK deprecations, werkzeug access log) would drown the report."""
    warnings.simplefilter("ignore")
    for name in ("werkzeug", "openstack", "keystoneauth", "botocore", "urllib3"):
        logging.getLogger(name).setLevel(logging.ERROR)


def raise_on_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt so the same cleanup runs as on Ctrl-C."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)


# --------------------------------------------------------------------------------------------
# Building the LBs
# --------------------------------------------------------------------------------------------


class Addresses:
    """Hands out member IPs that are never reused, so every target group sees distinct IPs."""

    def __init__(self) -> None:
        self._next = 0

    def take(self, count: int) -> list[str]:
        first = self._next
        self._next += count
        return [str(FIRST_MEMBER + i) for i in range(first, first + count)]


@dataclass(slots=True)
class Binding:
    lb_id: str
    pool_id: str
    target_group_arn: str


@dataclass(slots=True)
class Fleet:
    """The LBs of one size, the provider inputs for each LB, and its state after the last sync."""

    size: Size
    lb_ids: list[str]
    bindings: list[list[Binding]]  # per LB
    inputs: list[dict[str, Any]] = field(default_factory=list)
    states: list[dict[str, Any]] = field(default_factory=list)


def member(address: str) -> dict[str, Any]:
    return {"address": address, "protocol_port": MEMBER_PORT, "weight": 1, "admin_state_up": True}


def post_lbs(conn: Any, size: Size, project_id: str, addresses: Addresses) -> list[str]:
    """POST every LB of a size fully populated (listeners, default pools, members) at once."""
    lb_ids = []
    for index in range(size.lbs):
        listeners = [
            {
                "protocol": "TCP",
                "protocol_port": LISTENER_PORTS[p],
                "default_pool": {
                    "name": f"pool-{p}",
                    "protocol": "TCP",
                    "lb_algorithm": "ROUND_ROBIN",
                    "members": [member(a) for a in addresses.take(size.members)],
                },
            }
            for p in range(size.pools)
        ]
        body = {
            "name": f"sync-{size.label}-{index}",
            "project_id": project_id,
            "vip_subnet_id": str(uuid.uuid4()),
            "listeners": listeners,
        }
        response = conn.load_balancer.post("/lbaas/loadbalancers", json={"loadbalancer": body})
        if response.status_code != 201:
            raise RuntimeError(
                f"creating LB {body['name']}: {response.status_code} {response.text}"
            )
        lb_ids.append(response.json()["loadbalancer"]["id"])
    return lb_ids


def wait_active(conn: Any, lb_id: str) -> None:
    conn.load_balancer.wait_for_load_balancer(
        lb_id, status="ACTIVE", failures=["ERROR"], interval=0.2, wait=WAIT_SECONDS
    )


def finish_fleet(conn: Any, elb: Any, vpc_id: str, size: Size, lb_ids: list[str]) -> Fleet:
    """Wait for the LBs, then give every pool its own target group and check the inputs."""
    from providers.octavia_nlb_sync import OctaviaNlbSyncProvider

    provider = OctaviaNlbSyncProvider()
    fleet = Fleet(size, lb_ids, [])
    for index, lb_id in enumerate(lb_ids):
        wait_active(conn, lb_id)
        pools = {p.name: p.id for p in conn.load_balancer.pools(loadbalancer_id=lb_id)}
        bindings = []
        for p in range(size.pools):
            arn = elb.create_target_group(
                Name=f"s{size.label}-{index}-{p}",
                Protocol="TCP",
                Port=LISTENER_PORTS[p],
                VpcId=vpc_id,
                TargetType="ip",
            )["TargetGroups"][0]["TargetGroupArn"]
            bindings.append(Binding(lb_id, pools[f"pool-{p}"], arn))
        fleet.bindings.append(bindings)
        props = {
            "loadbalancer_id": lb_id,
            "bindings": [
                {"pool_id": b.pool_id, "target_group_arn": b.target_group_arn} for b in bindings
            ],
            "vpc_cidrs": [VPC_CIDR],
            "provider_version": "1",
        }
        checked = provider.check({}, props)
        if checked.failures:
            raise RuntimeError(f"check failed: {checked.failures}")
        fleet.inputs.append(checked.inputs)
    return fleet


def churn(conn: Any, fleet: Fleet, round_no: int, addresses: Addresses) -> tuple[int, int, int]:
    """Swap ~1% of the members in Octavia (half out, half in) over at most two pools.

    Two pools, in different LBs where there are several, rotating each round, keep the Octavia
    worker time small (a batch PUT re-processes every member of its pool) while still giving
    two target groups real work. Returns (removed, added, pools touched).
    """
    total = max(2, round(fleet.size.total_members * CHURN_FRACTION))
    remove, add = total // 2, total - total // 2
    flat = [b for p in range(fleet.size.pools) for lb in fleet.bindings for b in [lb[p]]]
    picked: list[Binding] = []
    for offset in range(len(flat)):
        candidate = flat[(round_no * 2 + offset) % len(flat)]
        if candidate not in picked:
            picked.append(candidate)
        if len(picked) == 2:
            break
    rng = random.Random(round_no)
    waves: list[list[tuple[Binding, int, int]]] = []  # one pool per LB per wave (LB lock)
    for i, binding in enumerate(picked):
        out = remove // len(picked) + (i < remove % len(picked))
        new = add // len(picked) + (i < add % len(picked))
        wave = next((w for w in waves if all(b.lb_id != binding.lb_id for b, *_ in w)), None)
        if wave is None:
            waves.append(wave := [])
        wave.append((binding, out, new))
    for wave in waves:
        for binding, out, new in wave:
            current = sorted(
                (m.address for m in conn.load_balancer.members(binding.pool_id)),
                key=IPv4Address,
            )
            dropped = set(rng.sample(current, out))
            kept = [a for a in current if a not in dropped]
            body = {"members": [member(a) for a in kept + addresses.take(new)]}
            response = conn.load_balancer.put(f"/lbaas/pools/{binding.pool_id}/members", json=body)
            if response.status_code != 202:
                raise RuntimeError(f"batch member update: {response.status_code} {response.text}")
        for binding, *_ in wave:
            wait_active(conn, binding.lb_id)
    return remove, add, len(picked)


# --------------------------------------------------------------------------------------------
# The two sides of the comparison
# --------------------------------------------------------------------------------------------


def sync_all(fleet: Fleet, first: bool) -> None:
    """One provider call per LB, as the provider host makes them; keeps the new states."""
    from providers.octavia_nlb_sync import OctaviaNlbSyncProvider

    provider = OctaviaNlbSyncProvider()
    with contextlib.redirect_stderr(io.StringIO()):  # pulumi.log prints there outside Pulumi
        if first:
            fleet.states = [provider.create(inputs).outs for inputs in fleet.inputs]
        else:
            fleet.states = [
                provider.update("id", state, inputs).outs
                for state, inputs in zip(fleet.states, fleet.inputs, strict=True)
            ]


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
class Phase:
    counts: Counter[str]
    seconds: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


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


def update_readme(body: str) -> None:
    """Replace everything from '## Latest figures' to the next '## ' (or the end)."""
    text = README.read_text() if README.exists() else "# Benchmarks\n"
    head, marker, rest = text.partition("## Latest figures")
    tail = ""
    if marker:
        after = rest.split("\n## ", 1)
        tail = "\n## " + after[1] if len(after) == 2 else ""
    README.write_text(head.rstrip() + "\n\n## Latest figures\n\n" + body.strip() + "\n" + tail)


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


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
        update_readme(body)
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
