"""Runs the probes of every area at once, and turns what could not be checked into rows.

A probe is one subject's reads and the judging of their answers (`Probe.run` returns rows).
Probes run on a thread pool: the reads are network round trips, so threads waiting on them
overlap. Reads that several probes need (a cluster's API client, a hosted zone's id, an
Octavia pool's members) go through `Shared`, which makes each read once, in the thread that
asks first, while the others wait for its answer.

A probe that cannot check its subject raises `Unchecked` with one line saying why and what to
do. When one cause stops many probes (expired AWS credentials, a cluster that does not answer),
their rows are folded into one line naming the cause and the checks it stopped.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tools.verify.report import Row, error

T = TypeVar("T")
WORKERS = 16


class Unchecked(Exception):
    """The subject could not be checked; `access` names the shared cause (e.g. `cluster A`,
    `aws`), so that one cause gives one line."""

    def __init__(self, detail: str, access: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.access = access


@dataclass(frozen=True)
class Probe:
    check: str
    subject: str
    run: Callable[[], list[Row]]


class Shared:
    """Reads made once per key for the whole run, whichever probe asks first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._futures: dict[Hashable, Future[Any]] = {}

    def get(self, key: Hashable, read: Callable[[], T]) -> T:
        with self._lock:
            future = self._futures.get(key)
            mine = future is None
            if future is None:
                future = self._futures[key] = Future()
        if mine:
            try:
                future.set_result(read())
            except BaseException as failed:
                future.set_exception(failed)
        return future.result()  # type: ignore[no-any-return]


@dataclass
class Meter:
    """Counts the API calls by kind; `delay` adds a round trip to each (the benchmark's WAN)."""

    delay: float = 0.0
    counts: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def call(self, kind: str, read: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        with self._lock:
            self.counts[kind] += 1
        if self.delay:
            time.sleep(self.delay)
        return read(*args, **kwargs)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


Progress = Callable[[str], None]


def run(
    probes: Sequence[Probe], workers: int = WORKERS, progress: Progress | None = None
) -> list[Row]:
    """Every probe's rows, in the probes' order, whatever order they finished in."""
    results: dict[int, list[tuple[Row, str | None]]] = {}
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="verify") as pool:
        futures = {pool.submit(_rows_of, probe): i for i, probe in enumerate(probes)}
        for done, future in enumerate(as_completed(futures), start=1):
            i = futures[future]
            results[i] = future.result()
            if progress is not None:
                probe = probes[i]
                verdicts = ", ".join(sorted({row.result for row, _ in results[i]})) or "nothing"
                progress(f"[{done}/{len(probes)}] {probe.check} {probe.subject}: {verdicts}")
    return fold([pair for i in range(len(probes)) for pair in results[i]])


def _rows_of(probe: Probe) -> list[tuple[Row, str | None]]:
    try:
        return [(row, None) for row in probe.run()]
    except Unchecked as unchecked:
        return [(error(probe.check, probe.subject, unchecked.detail), unchecked.access)]
    except Exception as unexpected:  # a bug must not hide the other checks' answers
        first = (str(unexpected).strip().splitlines() or [""])[0][:200]
        detail = f"verify failed unexpectedly: {type(unexpected).__name__}: {first}"
        return [(error(probe.check, probe.subject, detail), None)]


def fold(rows: Sequence[tuple[Row, str | None]]) -> list[Row]:
    """One line per shared cause: the ERROR rows of one `access` become one row, at the place
    of the first and with its detail, naming the checks it stopped."""
    groups: dict[str, list[Row]] = {}
    for row, access in rows:
        if access is not None:
            groups.setdefault(access, []).append(row)
    folded: list[Row] = []
    for row, access in rows:
        if access is None:
            folded.append(row)
            continue
        group = groups[access]
        if row is not group[0]:
            continue
        if len(group) == 1:
            folded.append(row)
            continue
        stopped = Counter(r.check for r in group)
        listed = ", ".join(f"{n} {check}" for check, n in stopped.items())
        folded.append(error("access", access, f"{row.detail} (not checked: {listed})"))
    return folded
