"""When the running release last changed, from a stack's update history (pure).

A wave soaks from the update that put the running release in place: the last update that
changed a Prod's version or the wave. Any other update leaves the soak running. Drift
remediation may run an `up` every 10 minutes while members change, and a soak that restarted
on each of them would never end.

The history is what `pulumi stack history --json` prints, newest first. Each update carries
its kind, result, end time and the stack config it ran with (`config`: key →
`{value, objectValue, secret}`). The release an update ran is worked out from that config the
way the program works it out: `model.release.plan_release` over `release`, `prods` and
`segments`.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError

from model.config import ProdName, ProdSpec, Release, Segment
from model.release import plan_release
from model.stackfile import PROJECT

COUNTED = frozenset({"update", "resource-import"})
"""Kinds that run the program with the stack's config: each says which release it ran."""
RESETS = frozenset({"destroy", "import"})
"""Kinds after which nothing of what ran before is known to be running."""

_PRODS = TypeAdapter(dict[ProdName, ProdSpec])
_SEGMENTS = TypeAdapter(tuple[Segment, ...])


@dataclass(frozen=True, slots=True)
class Running:
    """The release one update ran: the wave, and the version of each Prod."""

    wave: int
    versions: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class SoakStart:
    since: datetime.datetime | None
    """When the first successful update that ran the current release ended."""
    complete: bool
    """The history reached the change, or the stack's first update: `since` is exact.
    Otherwise `since` is the oldest matching update seen, later than the truth."""
    problem: str | None = None
    """Why no soak is running, when the history shows one cannot be."""


def running_release(config: Mapping[str, Any]) -> Running | None:
    """The release an update ran, from its recorded config; None if it cannot be read."""
    try:
        release = Release.model_validate(_value(config, "release"))
        prods = _PRODS.validate_python(_value(config, "prods") or {})
        segments = _SEGMENTS.validate_python(_value(config, "segments") or ())
    except (ValidationError, KeyError, ValueError):
        return None
    plan = plan_release(prods, segments, release.version, release.previous_version, release.wave)
    versions = tuple(sorted((name, p.version) for name, p in plan.prods.items()))
    return Running(release.wave, versions)


def soak_start(history: Sequence[Mapping[str, Any]]) -> SoakStart:
    """When the release that the last successful update ran was first applied.

    Walks back from the newest update while each ran that same release. A newer update that
    failed or is still running counts only if it ran the same release too: one that set out
    to change the release may have rolled some Prods, so nothing has soaked.
    """
    newest_first = sorted(history, key=lambda h: str(h.get("startTime", "")), reverse=True)
    current: Running | None = None
    unfinished: list[tuple[Running | None, str]] = []
    since: datetime.datetime | None = None
    for entry in newest_first:
        kind = entry.get("kind")
        if kind in RESETS:
            return SoakStart(since, complete=True)
        if kind not in COUNTED:
            continue
        running = running_release(entry.get("config") or {})
        result = str(entry.get("result", ""))
        if since is None and result != "succeeded":
            unfinished.append((running, result))
            continue
        if since is None:
            if running is None:
                return SoakStart(None, True, _unreadable(entry))
            current = running
            changing = [r for ran, r in unfinished if ran != current]
            if changing:
                return SoakStart(None, True, _changing(changing[0]))
        if running != current:
            return SoakStart(since, complete=True)
        if result == "succeeded":
            since = _timestamp(str(entry["endTime"]))
    return SoakStart(since, complete=False)


def _value(config: Mapping[str, Any], key: str) -> Any:
    """A `hybrid-infra:<key>` value as the CLI records it; objects arrive parsed or as JSON."""
    recorded = config.get(f"{PROJECT}:{key}")
    if recorded is None:
        return None
    if "objectValue" in recorded:
        return recorded["objectValue"]
    if "value" not in recorded:
        raise KeyError(key)  # a secret, not shown without --show-secrets
    return json.loads(recorded["value"])


def _timestamp(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _unreadable(entry: Mapping[str, Any]) -> str:
    return (
        f"the last successful update (started {entry.get('startTime')}) ran a config whose "
        f"{PROJECT}:release, prods or segments cannot be read, so when its release was applied "
        "is unknown: run `pulumi up` with the stack file, then advance once it has soaked"
    )


def _changing(result: str) -> str:
    state = "is still running" if result == "in-progress" else f"ended {result or 'unfinished'}"
    return (
        f"the newest update changes the release and {state}: some Prods may run it, none has "
        "soaked. Run `pulumi up` until it succeeds, then advance once it has soaked"
    )
