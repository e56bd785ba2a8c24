"""A dead Prod under steady load, behind the real HAProxy (a benchmark, not a test).

    uv run python -m bench.edge_failover              # 5 runs per case; rewrites the figures
    uv run python -m bench.edge_failover --quick      # 1 run per case, a smoke run; no README
    uv run python -m bench.edge_failover --repeats 9 --rate 200 --no-readme

Two Prods on two clusters, each its own process (`devenv/haproxy.py`): `A-1` is the only Prod
of segment `solo`, `B-1` serves another segment and has the room to take `solo`. Placement
(`model.placement.fallbacks`) makes `B-1` the fallback of `solo`, and `model.edge_config.render`
turns the table into the configuration the program ships; the real HAProxy (Debian's 2.6) runs
it. Requests for `solo` arrive at a steady `--rate` (open loop: a slow answer does not slow
the arrivals, as with real users), each on a new connection. Per run, `A-1`

- **killed** (`SIGKILL`: connections reset, new ones refused, as when a Pod or node process
  dies), then started again on its port; or
- **frozen** (`SIGSTOP` with a short accept queue: the kernel queues two connections, then
  drops new SYNs unanswered, as a node or cluster that vanished from the network), then thawed;

and, for comparison, **killed, checks only**: the same configuration without `observe layer4`
/ `on-error mark-down`, so only the health checks (every 2 s, 3 failures) find the dead Prod.

Figures per run: from the kill to the first answer from the fallback; requests that failed
(any answer but 200, or none); the slowest request sent during the failure; from the restart
to the first answer from `A-1` again, and requests failed while it comes back.

Goals (PASS/FAIL): the fallback answers within 10 s of the failure, and no request fails once
it has (the floor); no request fails at all (the aim) for a killed or a frozen Prod; the
segment returns to its Prod with no failure. A full run rewrites the "edge_failover" figures
in bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from ipaddress import ip_network
from pathlib import Path

from bench.harness import README, ROOT, write_figures
from devenv.haproxy import Edge, ProdProcess, ask, loopback_routing
from devenv.processes import free_port
from model.config import ProdSpec, Segment
from model.edge_config import EdgeSettings, render
from model.placement import fallbacks, place

SEGMENT = "solo"
FAST_MARK_DOWN = " observe layer4 error-limit 1 on-error mark-down"
FLOOR_SECONDS = 10.0


def say(message: str) -> None:
    print(f"[edge_failover] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True, slots=True)
class Sent:
    at: float
    done: float
    prod: str
    """The Prod that answered, or what went wrong."""


class Traffic:
    """Requests for one segment at a steady rate, each on a new connection, all recorded."""

    def __init__(self, port: int, rate: float) -> None:
        self.port, self.rate = port, rate
        self.sent: list[Sent] = []
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=128)
        self._clock = threading.Thread(target=self._arrivals)
        self._clock.start()

    def _arrivals(self) -> None:
        gap = 1 / self.rate
        next_at = time.monotonic()
        while not self._stop.is_set():
            self._pool.submit(self._one)
            next_at += gap
            time.sleep(max(0.0, next_at - time.monotonic()))

    def _one(self) -> None:
        at = time.monotonic()
        try:
            prod = ask(self.port, {"X-Hybrid-Segment": SEGMENT}, timeout=90).prod
        except OSError as error:
            prod = f"{type(error).__name__}"
        self.sent.append(Sent(at, time.monotonic(), prod))

    def last_answer(self, since: float) -> str:
        answers = [s for s in list(self.sent) if s.at >= since]
        return answers[-1].prod if answers else "-"

    def stop(self) -> list[Sent]:
        self._stop.set()
        self._clock.join()
        self._pool.shutdown(wait=True)
        return sorted(self.sent, key=lambda s: s.at)


@dataclass(frozen=True, slots=True)
class Run:
    case: str
    detect: float
    """From the failure to the first answer from the fallback."""
    failed: int
    failed_after_detect: int
    slowest: float
    during: int
    """Requests sent between the failure and the Prod's return."""
    back: float
    """From the restart to the first answer from the Prod again."""
    failed_on_return: int


def wait_for(what: Callable[[], str], expected: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while what() != expected:
        if time.monotonic() > deadline:
            raise RuntimeError(f"still {what()!r} after {seconds} s, expected {expected!r}")
        time.sleep(0.05)


def one_run(case: str, edge: Edge, config: str, prod: ProdProcess, rate: float) -> Run:
    edge.apply(config)
    wait_for(lambda: ask(edge.port, {"X-Hybrid-Segment": SEGMENT}).prod, "A-1", 30)
    traffic = Traffic(edge.port, rate)
    time.sleep(1.0)
    failed_at = time.monotonic()
    if case == "frozen":
        prod.freeze()
    else:
        prod.kill()
    wait_for(lambda: traffic.last_answer(failed_at), "B-1", 60)
    time.sleep(3.0)
    back_at = time.monotonic()
    if case == "frozen":
        prod.thaw()
    else:
        prod.start()
        back_at = time.monotonic()  # it listens from here on
    wait_for(lambda: traffic.last_answer(back_at), "A-1", 60)
    time.sleep(1.0)
    sent = traffic.stop()
    ok = {"A-1", "B-1"}
    first_fallback = min(s.done for s in sent if s.prod == "B-1" and s.done >= failed_at)
    first_back = min(s.done for s in sent if s.prod == "A-1" and s.at >= back_at)
    failure = [s for s in sent if s.done >= failed_at and s.at < back_at]
    return Run(
        case=case,
        detect=first_fallback - failed_at,
        failed=sum(s.prod not in ok for s in sent),
        failed_after_detect=sum(s.prod not in ok for s in sent if s.at >= first_fallback),
        slowest=max(s.done - s.at for s in failure),
        during=len(failure),
        back=first_back - back_at,
        failed_on_return=sum(s.prod not in ok for s in sent if s.at >= back_at),
    )


def configuration(ports: dict[str, int], port: int) -> str:
    """What the program would render for this fleet: placement, fallbacks, then the config."""
    prods = {
        "A-1": ProdSpec(cluster="A", capacity=1000),
        "B-1": ProdSpec(cluster="B", capacity=1000),
    }
    segments = [
        Segment(name=SEGMENT, users=300, prods=("A-1",)),
        Segment(name="other", users=200, prods=("B-1",)),
    ]
    table = loopback_routing(place(prods, segments), fallbacks(prods, segments), ports, "/healthz")
    assert [f["prod"] for f in table["segments"][SEGMENT]["fallbacks"]] == ["B-1"]
    loopback = (ip_network("127.0.0.0/8"),)
    return render(table, EdgeSettings("other", port=port, trusted_sources=loopback))


def measure(repeats: int, rate: float) -> list[Run]:
    runs = []
    with tempfile.TemporaryDirectory(prefix="edge-failover-") as workdir:
        a1 = ProdProcess("A-1", backlog=1)
        b1 = ProdProcess("B-1")
        edge = Edge(Path(workdir), free_port())
        try:
            config = configuration({"A-1": a1.port, "B-1": b1.port}, edge.port)
            cases = {
                "killed": config,
                "frozen": config,
                "killed, checks only": config.replace(FAST_MARK_DOWN, ""),
            }
            for case, text in cases.items():
                for i in range(repeats):
                    say(f"{case}: run {i + 1} of {repeats}")
                    runs.append(one_run(case, edge, text, a1, rate))
        finally:
            edge.stop()
            a1.stop()
            b1.stop()
    return runs


def table(runs: list[Run], rate: float, repeats: int) -> str:
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    today = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    rows = [
        f"{today} · {os.cpu_count()} CPU cores (shared, noisy), load {load} at the end · "
        f"{rate:g} requests/s for segment `{SEGMENT}` · {repeats} runs per case · "
        "HAProxy 2.6 (Debian)",
        "",
        "| case | fallback answers after s (median, max) | failed / sent during the failure "
        "| failed once the fallback answered | slowest request s (max) "
        "| Prod answers again after s (median, max) | failed on its return |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for case in dict.fromkeys(r.case for r in runs):
        of = [r for r in runs if r.case == case]
        detect = [r.detect for r in of]
        back = [r.back for r in of]
        rows.append(
            f"| {case} | {statistics.median(detect):.2f} ({max(detect):.2f}) "
            f"| {sum(r.failed for r in of)} / {sum(r.during for r in of)} "
            f"| {sum(r.failed_after_detect for r in of)} "
            f"| {max(r.slowest for r in of):.2f} "
            f"| {statistics.median(back):.2f} ({max(back):.2f}) "
            f"| {sum(r.failed_on_return for r in of)} |"
        )
    return "\n".join(rows)


def verdicts(runs: list[Run]) -> list[str]:
    lines = []
    for case in ("killed", "frozen"):
        of = [r for r in runs if r.case == case]
        worst = max(r.detect for r in of)
        late = sum(r.failed_after_detect for r in of)
        failed = sum(r.failed for r in of)
        back = sum(r.failed_on_return for r in of)
        mark = "PASS" if worst <= FLOOR_SECONDS and late == 0 else "FAIL"
        lines.append(
            f"{mark} {case}: the fallback answers within {worst:.2f} s (floor "
            f"{FLOOR_SECONDS:g} s) and {late} request(s) failed once it did (floor 0)"
        )
        mark = "PASS" if failed == 0 else "FAIL"
        lines.append(f"{mark} {case}: {failed} request(s) failed in all (aim 0)")
        mark = "PASS" if back == 0 else "FAIL"
        lines.append(f"{mark} {case}: {back} request(s) failed while the Prod came back (goal 0)")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rate", type=float, default=100.0, help="requests per second")
    parser.add_argument("--quick", action="store_true", help="one run per case; no README")
    parser.add_argument("--no-readme", action="store_true")
    args = parser.parse_args(argv)
    repeats = 1 if args.quick else args.repeats
    try:
        runs = measure(repeats, args.rate)
    except KeyboardInterrupt:
        say("interrupted; HAProxy and the Prods stopped")
        return 130
    report = table(runs, args.rate, repeats)
    lines = verdicts(runs)
    print(report)
    print("\n".join(lines))
    if not (args.quick or args.no_readme):
        write_figures("edge_failover", report + "\n\n" + "\n".join(f"- {line}" for line in lines))
        say(f"wrote the figures into {README.relative_to(ROOT)}")
    return 0 if all(line.startswith("PASS") for line in lines) else 1


if __name__ == "__main__":
    sys.exit(main())
