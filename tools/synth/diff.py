"""What changed between two snapshots: resources added, removed, and changed per key path.

Pure functions over two snapshots (see `tools.synth.snapshot`). Secrets are `[secret]` on both
sides, so a rotated secret is not a change here: that is the price of never holding one.

A resource's `ignoreChanges` is applied as the engine applies it: each listed input path of the
new record takes the old record's value (or is dropped where the old one had none; `*` is every
input), before the records are compared. What the program declares there but the engine will
not send is listed apart, as held back. Setting or clearing `ignoreChanges` is no change by
itself: the engine calls no provider for it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Iterator, Mapping
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
    held: tuple[ResourceChange, ...] = ()
    """Input changes the engine will not make, because the new record ignores them."""

    @property
    def empty(self) -> bool:
        """Nothing the engine would do; held-back changes do nothing until they are released."""
        return not (self.added or self.removed or self.changed or self.outputs)


def diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> SnapshotDiff:
    """Compare two snapshots resource by resource (by URN), then their outputs."""
    before, after = old["resources"], new["resources"]
    changed, held = [], []
    for urn in sorted(before.keys() & after.keys()):
        was, now = before[urn], after[urn]
        kept = held_back(was["inputs"], now["inputs"], now.get("ignoreChanges", ()))
        changes = tuple(_record_changes(was, {**now, "inputs": kept}))
        if changes:
            changed.append(ResourceChange(urn, now["type"], now["name"], changes))
        ignored = tuple(changes_between(kept, now["inputs"], "inputs"))
        if ignored:
            held.append(ResourceChange(urn, now["type"], now["name"], ignored))
    return SnapshotDiff(
        added=tuple(_brief(urn, after[urn]) for urn in sorted(after.keys() - before.keys())),
        removed=tuple(_brief(urn, before[urn]) for urn in sorted(before.keys() - after.keys())),
        changed=tuple(changed),
        outputs=tuple(changes_between(old.get("outputs", {}), new.get("outputs", {}))),
        held=tuple(held),
    )


def held_back(old: Mapping[str, Any], new: Mapping[str, Any], paths: Iterable[str]) -> Any:
    """`new` inputs as the engine sends them: every ignored path reset to its `old` value.

    Paths are dot-separated keys, each of which may be `*` (every key). Array indexes are not
    read: such a path is left alone, so its change still shows as a change.
    """
    kept: Any = copy.deepcopy(dict(new))
    for path in paths:
        if "[" not in path:
            kept = _reset(old, kept, path.split("."))
    return kept


def _reset(old: Any, new: Any, keys: list[str]) -> Any:
    if not isinstance(new, Mapping):
        return new
    old_map = old if isinstance(old, Mapping) else {}
    key, rest = keys[0], keys[1:]
    # A final `*` makes the whole map the old one; a `*` on the way follows the old keys.
    names = [key] if key != "*" else sorted(set(old_map) | (set() if rest else set(new)))
    result = dict(new)
    for name in names:
        if rest:
            if name in result:
                result[name] = _reset(old_map.get(name), result[name], rest)
        elif name in old_map:
            result[name] = copy.deepcopy(old_map[name])
        else:
            result.pop(name, None)
    return result


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
    for rc in d.held:
        lines.append(f"= {kinds.short_type(rc.type)} {rc.name}  (held back by ignoreChanges)")
        lines.extend(f"    {_change(c)}" for c in rc.changes)
    if d.outputs:
        lines.append("~ outputs")
        lines.extend(f"    {_change(c)}" for c in d.outputs)
    lines.append(summary(d))
    return "\n".join(lines) + "\n"


def summary(d: SnapshotDiff) -> str:
    held = f"{len(d.held)} held back by ignoreChanges" if d.held else ""
    if d.empty:
        return f"no changes; {held}" if held else "no changes"
    text = f"{len(d.added)} to add, {len(d.changed)} to change, {len(d.removed)} to remove"
    if d.outputs:
        text += f", {len(d.outputs)} output change(s)"
    return f"{text}, {held}" if held else text


def _record_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> Iterator[Change]:
    """Type and name are the URN. Dependencies are a set: report what left and what came."""
    skip = ("type", "name", "dependencies", "ignoreChanges")
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
