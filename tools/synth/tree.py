"""The desired resource tree as text: components and their children, with key inputs.

Pure: it renders a snapshot (already redacted) and nothing else, so it can never print a secret
the snapshot does not hold.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping
from typing import Any

from tools.synth import kinds

Resources = Mapping[str, Mapping[str, Any]]
OUTPUT_WIDTH = 240  # outputs are what operators copy (ARNs, DNS names): cut only absurd ones


def render_tree(snap: Mapping[str, Any]) -> str:
    """Header, the tree by parent, then outputs and anything the program logged."""
    resources: Resources = snap["resources"]
    lines = [_header(snap)]
    children = children_by_parent(resources)
    roots = [urn for urn, r in resources.items() if r["parent"] not in resources]
    for urn, last in _with_last(_ordered(roots, resources)):
        lines.extend(_branch(urn, resources, children, "", last))
    outputs = list(flatten(snap.get("outputs") or {}))
    if outputs:
        lines.append("")
        lines.append("outputs:")
        lines.extend(
            f"  {path} = {kinds.format_value(value, OUTPUT_WIDTH)}" for path, value in outputs
        )
    if snap.get("logs"):
        lines.append("")
        lines.append("logs:")
        lines.extend(f"  {line}" for line in snap["logs"])
    return "\n".join(lines) + "\n"


def describe(resource: Mapping[str, Any]) -> str:
    """One resource on one line: `aws:lb:LoadBalancer shop-nlb  internal=false …  [protect]`."""
    type_, name, custom = resource["type"], resource["name"], resource["custom"]
    text = f"{kinds.short_type(type_)} {name}"
    pairs = kinds.key_inputs(type_, name, resource["inputs"], custom)
    if pairs:
        text += "  " + " ".join(f"{label}={kinds.format_value(value)}" for label, value in pairs)
    flags = [flag for flag, on in _flags(resource) if on]
    if flags:
        text += "  " + " ".join(f"[{flag}]" for flag in flags)
    return text


def children_by_parent(resources: Resources) -> dict[str, list[str]]:
    children: dict[str, list[str]] = defaultdict(list)
    for urn, r in resources.items():
        if r["parent"] in resources:
            children[r["parent"]].append(urn)
    return children


def flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """`(a.b[0].c, leaf)` pairs, with lists of scalars kept whole (they read fine inline)."""
    if isinstance(value, Mapping) and value:
        for key in sorted(value):
            yield from flatten(value[key], f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list) and any(isinstance(v, Mapping | list) for v in value):
        for i, item in enumerate(value):
            yield from flatten(item, f"{prefix}[{i}]")
    else:
        yield prefix, value


def _header(snap: Mapping[str, Any]) -> str:
    resources: Resources = snap["resources"]
    providers = sum(1 for r in resources.values() if r["type"].startswith("pulumi:providers:"))
    components = sum(1 for r in resources.values() if not r["custom"])
    custom = len(resources) - components - providers
    return (
        f"{snap['project']}/{snap['stack']}: {len(resources)} resources "
        f"({components} components, {custom} custom, {providers} providers)"
    )


def _branch(
    urn: str, resources: Resources, children: Mapping[str, list[str]], indent: str, last: bool
) -> Iterator[str]:
    yield f"{indent}{'└── ' if last else '├── '}{describe(resources[urn])}"
    below = indent + ("    " if last else "│   ")
    for child, child_last in _with_last(_ordered(children.get(urn, []), resources)):
        yield from _branch(child, resources, children, below, child_last)


def _ordered(urns: list[str], resources: Resources) -> list[str]:
    return sorted(
        urns,
        key=lambda u: kinds.sort_key(
            resources[u]["type"], resources[u]["name"], resources[u]["custom"]
        ),
    )


def _with_last(items: list[str]) -> Iterator[tuple[str, bool]]:
    for i, item in enumerate(items):
        yield item, i == len(items) - 1


def _flags(resource: Mapping[str, Any]) -> list[tuple[str, bool]]:
    return [
        ("protect", bool(resource.get("protect"))),
        ("delete-before-replace", bool(resource.get("deleteBeforeReplace"))),
        ("frozen", resource.get("ignoreChanges") == ["*"]),
    ]
