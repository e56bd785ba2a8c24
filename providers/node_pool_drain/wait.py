"""The one poll loop of the drain's waits, shaped like openstacksdk's
`resource.wait_for_status`: look every `interval` seconds for at most `wait` seconds, report
progress through a callback, and raise at the deadline.

What it adds to openstacksdk's: the timeout error is built from the last look (so it can say how
far things got), progress is reported only when it changed, and `between` may act after a look
that is not done yet (the drain evicts there). Time is passed in (`clock`, `sleep`) so a test
can make a timeout pass in a few requests.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol, TypeVar

Clock = Callable[[], float]
Sleep = Callable[[float], None]
Log = Callable[[str], None]


class Look(Protocol):
    """One look at what is waited for; equal looks mean no progress."""

    def summary(self) -> str: ...


T = TypeVar("T", bound=Look)


def wait_for(
    look: Callable[[], T],
    done: Callable[[T], bool],
    *,
    interval: float,
    wait: float,
    timed_out: Callable[[T], Exception],
    callback: Log,
    between: Callable[[float], None] | None = None,
    clock: Clock = time.monotonic,
    sleep: Sleep = time.sleep,
) -> T:
    """Look until `done`, and return that look; `callback` gets each look's summary when it
    differs from the last one's. At the deadline, raise `timed_out(last look)`. After a look
    that is not done, `between(now)` runs before the next sleep, which never overshoots the
    deadline."""
    deadline = clock() + wait
    last: T | None = None
    while True:
        seen = look()
        if seen != last:
            callback(seen.summary())
            last = seen
        if done(seen):
            return seen
        now = clock()
        if now >= deadline:
            raise timed_out(seen)
        if between is not None:
            between(now)
        sleep(max(0.0, min(interval, deadline - clock())))
