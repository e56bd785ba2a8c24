"""The world the sync benches build and drive: a real Octavia v2 API (`devenv.octavia`) and a
moto server on 127.0.0.1 with this process's `OS_*`/`AWS_*` pointed at them, load balancers of a
size `LxPxM` (L LBs x P pools x M members) built fully populated in one POST each, a target group
per pool, member churn in Octavia, and the provider called in-process as its host calls it."""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import random
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

REGION = "eu-west-1"
VPC_CIDR = "10.10.0.0/16"
FIRST_MEMBER = IPv4Address("172.16.0.1")  # outside the VPC: on-prem members, zone "all"
LISTENER_PORTS = (443, 80, 8443, 8080)
MEMBER_PORT = 8443
OCTAVIA_PAGE_LIMIT = 1000  # Octavia's default [api_settings] pagination_max_limit
CHURN_FRACTION = 0.01
WAIT_SECONDS = 600


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
# The provider, as its host calls it
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
