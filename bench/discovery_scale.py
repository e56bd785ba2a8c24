"""What self-service discovery adds to a preview, with many tagged LBs (a benchmark, not a test).

    uv run python -m bench.discovery_scale              # 200 tagged LBs among 400
    uv run python -m bench.discovery_scale --count 50

Starts the real Octavia API (`bench.world`, as the sync benches do), creates `--count` LBs
carrying the discovery tag and as many without it, then times the program's discovery step:
the listing (`octavia.list_tagged`, one API call, paged at Octavia's 1,000) and the pure
planning of the twins (`model.discovery.twins`). The describing of each LB is not counted: it
is what an adopt-mode entry in the stack file costs anyway.

Goal (PASS/FAIL): discovery makes one list call per ceil(tagged / 1,000), whatever the count.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import statistics
import sys
import time
import uuid

from bench.calls import CallCounter
from bench.harness import quiet_libraries, raise_on_sigterm, say
from bench.world import OCTAVIA_PAGE_LIMIT, environment

TAG = "hybrid-infra/twin"


def create(conn, project_id: str, count: int, tags: list[str]) -> None:
    for index in range(count):
        body = {
            "name": f"svc-{index:04d}",
            "project_id": project_id,
            "vip_subnet_id": str(uuid.uuid4()),
            "tags": [*tags, f"hybrid-infra/address=198.51.100.{index % 250 + 1}"] if tags else [],
        }
        response = conn.load_balancer.post("/lbaas/loadbalancers", json={"loadbalancer": body})
        if response.status_code != 201:
            raise RuntimeError(f"creating an LB: {response.status_code} {response.text}")


def run(count: int, repeats: int) -> int:
    import openstack

    from model.config import Discovery
    from model.discovery import twins
    from providers.octavia_nlb_sync import octavia

    quiet_libraries()
    raise_on_sigterm()
    with contextlib.ExitStack() as stack:
        environment(stack)
        counter = CallCounter()
        stack.enter_context(counter.hooked())
        conn = openstack.connect()
        project = uuid.uuid4().hex
        say(f"creating {count} tagged and {count} untagged LBs")
        create(conn, project, count, [TAG])
        create(conn, project, count, [])
        discovery = Discovery.model_validate(
            {"defaults": {"zone": "example.net", "checkPort": 443}}
        )
        listing, planning = [], []
        for _ in range(repeats):
            with counter.window() as counts:
                began = time.perf_counter()
                tagged = octavia.list_tagged(octavia.connect(None), TAG)
                listing.append(time.perf_counter() - began)
            began = time.perf_counter()
            found, skipped = twins(tagged, discovery, [])
            planning.append(time.perf_counter() - began)
    calls = sum(n for kind, n in counts.items() if kind.startswith("os GET /lbaas/loadbalancers"))
    pages = math.ceil(count / OCTAVIA_PAGE_LIMIT)
    listed_ms, planned_ms = statistics.median(listing) * 1000, statistics.median(planning) * 1000
    print(
        f"{count} tagged LBs (of {2 * count}): {len(tagged)} listed, {len(found)} twins, "
        f"{len(skipped)} skipped; list calls {calls}; listing {listed_ms:.0f} ms, planning "
        f"{planned_ms:.1f} ms (median of {repeats})"
    )
    ok = calls == pages and len(found) == count
    print(
        f"{'PASS' if ok else 'FAIL'} discovery makes {calls} list call(s) for {count} tagged LBs "
        f"(goal: {pages}, one per page of {OCTAVIA_PAGE_LIMIT})"
    )
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    return run(args.count, args.repeats)


if __name__ == "__main__":
    sys.exit(main())
