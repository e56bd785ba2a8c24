"""What changed between two snapshots: resources added, removed, and changed per key path.

Pure functions over two snapshots (see `tools.synth.snapshot`). Secrets are `[secret]` on both
sides, so a rotated secret is not a change here: that is the price of never holding one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from tools.synth import kinds
from tools.synth.tree import describe

ABSENT = object()
VALUE_WIDTH = 60


@dataclass(frozen=True, slots=True)
class Change:
    """One leaf that differs; `old`/`new` is `ABSENT` where the path exists on one side only."""

    path: str
    old: Any
    new: Any


@dataclass(frozen=True, slots=True)
class ResourceChange:
    urn: str
    type: str
    name: str
    changes: tuple[Change, ...]


@dataclass(frozen=True, slots=True)
class Brief:
    """An added or removed resource, with its record for showing key inputs."""

    urn: str
    record: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class SnapshotDiff:
    added: tuple[Brief, ...]
    removed: tuple[Brief, ...]
    changed: tuple[ResourceChange, ...]
    outputs: tuple[Change, ...]

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed or self.outputs)


def diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> SnapshotDiff:
    """Compare two snapshots resource by resource (by URN), then their outputs."""
    before, after = old["resources"], new["resources"]
    changed = []
    for urn in sorted(before.keys() & after.keys()):
        changes = tuple(_record_changes(before[urn], after[urn]))
        if changes:
            r = after[urn]
            changed.append(ResourceChange(urn, r["type"], r["name"], changes))
    return SnapshotDiff(
        added=tuple(_brief(urn, after[urn]) for urn in sorted(after.keys() - before.keys())),
        removed=tuple(_brief(urn, before[urn]) for urn in sorted(before.keys() - after.keys())),
        changed=tuple(changed),
        outputs=tuple(changes_between(old.get("outputs", {}), new.get("outputs", {}))),
    )


def changes_between(old: Any, new: Any, path: str = "") -> Iterator[Change]:
    """Leaf-level differences, with paths like `inputs.weightedRoutingPolicies[0].weight`."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in sorted(old.keys() | new.keys()):
            child = f"{path}.{key}" if path else str(key)
            yield from changes_between(old.get(key, ABSENT), new.get(key, ABSENT), child)
    elif isinstance(old, list) and isinstance(new, list):
        for i in range(max(len(old), len(new))):
            yield from changes_between(
                old[i] if i < len(old) else ABSENT,
                new[i] if i < len(new) else ABSENT,
                f"{path}[{i}]",
            )
    elif old is ABSENT or new is ABSENT or type(old) is not type(new) or old != new:
        yield Change(path, old, new)


def render_diff(d: SnapshotDiff, old_label: str = "old", new_label: str = "new") -> str:
    """Terraform-like text: `+` added, `-` removed, `~` changed with `path: old → new`."""
    lines = [f"--- {old_label}", f"+++ {new_label}"]
    lines.extend(f"+ {describe(b.record)}" for b in d.added)
    lines.extend(f"- {describe(b.record)}" for b in d.removed)
    for rc in d.changed:
        lines.append(f"~ {kinds.short_type(rc.type)} {rc.name}")
        lines.extend(f"    {_change(c)}" for c in rc.changes)
    if d.outputs:
        lines.append("~ outputs")
        lines.extend(f"    {_change(c)}" for c in d.outputs)
    lines.append(summary(d))
    return "\n".join(lines) + "\n"


def summary(d: SnapshotDiff) -> str:
    if d.empty:
        return "no changes"
    return f"{len(d.added)} to add, {len(d.changed)} to change, {len(d.removed)} to remove" + (
        f", {len(d.outputs)} output change(s)" if d.outputs else ""
    )


def _record_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> Iterator[Change]:
    """Type and name are the URN. Dependencies are a set: report what left and what came."""
    skip = ("type", "name", "dependencies")
    yield from changes_between(
        {k: v for k, v in old.items() if k not in skip},
        {k: v for k, v in new.items() if k not in skip},
    )
    was, now = set(old.get("dependencies", ())), set(new.get("dependencies", ()))
    if was != now:
        yield Change("dependencies", sorted(was - now), sorted(now - was))


def _brief(urn: str, record: Mapping[str, Any]) -> Brief:
    return Brief(urn, record)


def _change(c: Change) -> str:
    return f"{c.path}: {_value(c.old)} → {_value(c.new)}"


def _value(value: Any) -> str:
    if value is ABSENT:
        return "(absent)"
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    if len(text) > VALUE_WIDTH:
        keep = (VALUE_WIDTH - 1) // 2
        text = f"{text[:keep]}…{text[-keep:]}"
    return text
