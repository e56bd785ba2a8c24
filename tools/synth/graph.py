"""The architecture as a picture: Graphviz DOT or Mermaid text from a snapshot.

`layout` turns a snapshot into a `Picture` (nodes, nested groups, edges); `to_dot` and
`to_mermaid` only write it out. All three are pure, so the drawing rules are testable without
Graphviz; `render_svg` is the one function that runs `dot`.

Rules, generic over parent/child and dependencies so new components need no change here:
- every component resource is a group (a DOT cluster), nested like the tree;
- custom resources are boxes in their nearest component's group; when a group holds resources
  of two clouds (a hybrid LB's Octavia side and its NLB twin), each cloud gets a sub-group;
- an edge goes from a dependency to what depends on it (creation order, left to right);
- provider resources are not drawn; a resource on a provider that depends on something (a
  Kubernetes provider on its cluster) gets a dashed edge from that thing instead;
- sibling leaves of one type with the same dependencies (the members of a pool, the rules of a
  security group) collapse into one `N x` box, which keeps hundreds of members legible.
"""

from __future__ import annotations

import shutil
import subprocess
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.synth import kinds

Resources = Mapping[str, Mapping[str, Any]]

SIDE_LABELS = {"openstack": "on-prem · OpenStack", "aws": "AWS", "gcp": "GCP"}
FILL = {
    "openstack": "#fde2de",
    "aws": "#ffeacc",
    "gcp": "#dbe8fd",
    "kubernetes": "#dfe6fb",
    "dynamic": "#dcf2d2",
    "component": "#eeeeee",
    "other": "#f2f2f2",
}
STROKE = {
    "openstack": "#c0392b",
    "aws": "#d68910",
    "gcp": "#2e6fd1",
    "kubernetes": "#3b5bdb",
    "dynamic": "#2e8b3a",
    "component": "#777777",
    "other": "#999999",
}
SHAPES = {
    "openstack:loadbalancer/loadBalancer:LoadBalancer": "box3d",
    "aws:lb/loadBalancer:LoadBalancer": "box3d",
    "aws:route53/record:Record": "cds",
    "aws:route53/healthCheck:HealthCheck": "ellipse",
    "aws:cloudwatch/metricAlarm:MetricAlarm": "ellipse",
    "pulumi-python:dynamic/hybrid-infra:OctaviaNlbSync": "hexagon",
    "openstack:containerinfra/cluster:Cluster": "box3d",
    "aws:eks/cluster:Cluster": "box3d",
    "gcp:container/cluster:Cluster": "box3d",
}
GROUP_STYLE = {
    kinds.HYBRID_LB: ("#f6f6fc", "#6c6cb4"),
    kinds.WEIGHTED_DNS: ("#f1f9f1", "#4f9a4f"),
    kinds.PROD: ("#fff8e6", "#c9a227"),
}
CLUSTER_STYLE = ("#f0f5ff", "#5b7bb5")
PLAIN_STYLE = ("#ffffff", "#999999")
COLLAPSE_AT = 2
SHOWN_IN_COLLAPSED = 3
DETAIL_KEYS = 2


@dataclass(frozen=True, slots=True)
class Node:
    id: str
    lines: tuple[str, ...]
    family: str
    shape: str
    urns: tuple[str, ...]


@dataclass(slots=True)
class Group:
    id: str
    lines: tuple[str, ...]
    fill: str
    stroke: str
    dashed: bool = False
    nodes: list[str] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)

    def node_ids(self) -> Iterable[str]:
        """Every node in this group and below it."""
        yield from self.nodes
        for group in self.groups:
            yield from group.node_ids()


@dataclass(frozen=True, slots=True)
class Edge:
    tail: str
    head: str
    style: str  # "dependency" | "parent" | "provider"


@dataclass(frozen=True, slots=True)
class Picture:
    title: str
    nodes: Mapping[str, Node]
    root: Group
    edges: tuple[Edge, ...]

    def groups(self) -> Iterable[Group]:
        """Every group, outermost first (the root is not a drawn group)."""
        stack = list(reversed(self.root.groups))
        while stack:
            group = stack.pop()
            yield group
            stack.extend(reversed(group.groups))


def layout(snap: Mapping[str, Any]) -> Picture:
    """Nodes, groups and edges for a snapshot, with deterministic ids (sorted by URN)."""
    resources: Resources = snap["resources"]
    drawn = {u for u, r in resources.items() if not _is_provider(r)}
    home = {u: _component_home(u, resources) for u in drawn}
    below = _custom_below(resources, drawn, home)
    node_of = _collapsed_nodes(resources, drawn, home)
    nodes = _nodes(resources, node_of)
    root, group_of, component_nodes = _groups(resources, drawn, home, below, node_of, nodes)
    nodes.update(component_nodes)
    anchors = {**node_of, **group_of}
    edges = _edges(resources, drawn, anchors, home, group_of, below)
    return Picture(f"{snap['project']}/{snap['stack']}", nodes, root, edges)


def to_dot(picture: Picture) -> str:
    """Graphviz DOT: left to right, one cluster per component, clouds in colour."""
    lines = [
        "digraph synth {",
        f"  graph [label={_q(picture.title)}, labelloc=t, fontsize=14, rankdir=LR, "
        'compound=true, newrank=true, fontname="Helvetica", nodesep=0.18, ranksep=0.4];',
        '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=9, '
        'margin="0.08,0.03", height=0.3];',
        '  edge [color="#8a8a8a", arrowsize=0.55, penwidth=0.8];',
    ]
    lines.extend(_dot_group_body(picture.root, picture, "  "))
    representative = {g.id: next(iter(g.node_ids()), None) for g in picture.groups()}
    inside = {g.id: set(g.node_ids()) for g in picture.groups()}
    for edge in picture.edges:
        line = _dot_edge(edge, representative, inside)
        if line:
            lines.append(f"  {line}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_mermaid(picture: Picture) -> str:
    """Mermaid flowchart text (renders on GitHub and GitLab without Graphviz)."""
    lines = [f"%% {picture.title}", "flowchart LR"]
    lines.extend(_mermaid_group_body(picture.root, picture, "  "))
    arrows = {"dependency": "-->", "parent": "-.-", "provider": "-.->"}
    lines.extend(f"  {e.tail} {arrows[e.style]} {e.head}" for e in picture.edges)
    by_family: dict[str, list[str]] = defaultdict(list)
    for node in picture.nodes.values():
        by_family[node.family].append(node.id)
    for family in sorted(by_family):
        lines.append(f"  classDef {family} fill:{FILL[family]},stroke:{STROKE[family]}")
        lines.append(f"  class {','.join(sorted(by_family[family], key=_id_order))} {family}")
    return "\n".join(lines) + "\n"


class GraphvizMissing(RuntimeError):
    """`dot` is not installed; the message says how to install it."""


def require_dot() -> str:
    """The path of Graphviz `dot`, or the error that says how to install it."""
    dot = shutil.which("dot")
    if dot is None:
        raise GraphvizMissing(
            "Graphviz `dot` is not installed, so no image can be drawn. Install it with "
            "`scripts/system-packages.sh` (Debian: `apt-get install -y graphviz`), or write "
            "`.dot` / `.mmd` instead, which need no tool."
        )
    return dot


def render_svg(dot_text: str, output: Path) -> None:
    """Run Graphviz `dot` to write `output` in the format its suffix names (svg, png, pdf)."""
    dot = require_dot()
    fmt = output.suffix.lstrip(".") or "svg"
    done = subprocess.run(
        [dot, f"-T{fmt}", "-o", str(output)],
        input=dot_text,
        text=True,
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"dot failed ({done.returncode}): {done.stderr.strip()}")


# --- layout ------------------------------------------------------------------------------------


def _is_provider(r: Mapping[str, Any]) -> bool:
    return str(r["type"]).startswith("pulumi:providers:")


def _component_home(urn: str, resources: Resources) -> str | None:
    """The nearest component above `urn` (a component's home is its parent component)."""
    parent = resources[urn]["parent"]
    while parent in resources:
        if not resources[parent]["custom"]:
            return str(parent)
        parent = resources[parent]["parent"]
    return None


def _collapsed_nodes(
    resources: Resources, drawn: set[str], home: Mapping[str, str | None]
) -> dict[str, str]:
    """URN → node id; sibling leaves alike in type, parent, dependencies and dependents share
    one node (the members of a pool, all awaited by the same sync)."""
    parents = {resources[u]["parent"] for u in drawn}
    dependents: dict[str, list[str]] = defaultdict(list)
    for u in sorted(drawn):
        for d in resources[u]["dependencies"]:
            dependents[d].append(u)
    buckets: dict[tuple[Any, ...], list[str]] = defaultdict(list)
    for urn in sorted(drawn):
        r = resources[urn]
        if not r["custom"]:
            continue
        if urn in parents:
            buckets[("single", urn)].append(urn)
        else:
            key = (
                "alike",
                home[urn],
                r["parent"],
                r["type"],
                tuple(r["dependencies"]),
                tuple(dependents[urn]),
            )
            buckets[key].append(urn)
    shared: list[list[str]] = []
    for urns in buckets.values():
        if len(urns) >= COLLAPSE_AT:
            shared.append(urns)
        else:
            shared.extend([u] for u in urns)
    return {urn: f"n{index}" for index, urns in enumerate(sorted(shared)) for urn in urns}


def _nodes(resources: Resources, node_of: Mapping[str, str]) -> dict[str, Node]:
    members: dict[str, list[str]] = defaultdict(list)
    for urn, node_id in node_of.items():
        members[node_id].append(urn)
    nodes = {}
    for node_id, urns in members.items():
        urns.sort()
        first = resources[urns[0]]
        kind = kinds.kind_of(first["type"], first["custom"])
        if len(urns) == 1:
            lines = (first["name"], kind.label, *_detail(first))
        else:
            shown = [
                kinds.brief(resources[u]["type"], resources[u]["name"], resources[u]["inputs"])
                for u in urns[:SHOWN_IN_COLLAPSED]
            ]
            more = len(urns) - SHOWN_IN_COLLAPSED
            lines = (
                f"{len(urns)} x {kind.label}",
                *shown,
                *([f"+{more} more"] if more > 0 else []),
            )
        shape = SHAPES.get(first["type"], "folder" if len(urns) > 1 else "box")
        nodes[node_id] = Node(node_id, tuple(lines), kind.family, shape, tuple(urns))
    return nodes


def _groups(
    resources: Resources,
    drawn: set[str],
    home: Mapping[str, str | None],
    below: Mapping[str, frozenset[str]],
    node_of: Mapping[str, str],
    nodes: Mapping[str, Node],
) -> tuple[Group, dict[str, str], dict[str, Node]]:
    """The group tree; components with nothing drawn inside become plain nodes."""
    components = sorted(u for u in drawn if not resources[u]["custom"])
    has_content = set(below)
    group_of: dict[str, str] = {}
    groups: dict[str | None, Group] = {None: Group("root", (), *PLAIN_STYLE)}
    for index, urn in enumerate(components):
        if urn in has_content:
            fill, stroke = _group_style(resources[urn]["type"])
            groups[urn] = Group(f"cluster_{index}", _group_lines(urn, resources), fill, stroke)
            group_of[urn] = groups[urn].id
    empty_nodes: dict[str, Node] = {}
    for index, urn in enumerate(c for c in components if c not in has_content):
        r = resources[urn]
        node_id = f"c{index}"
        kind = kinds.kind_of(r["type"], False)
        empty_nodes[node_id] = Node(
            node_id, (r["name"], kind.label), "component", "component", (urn,)
        )
        group_of[urn] = node_id
    for urn in components:
        target = groups.get(home[urn]) or groups[None]
        if urn in groups:
            target.groups.append(groups[urn])
        else:
            target.nodes.append(group_of[urn])
    placed: dict[str | None, dict[str, None]] = defaultdict(dict)  # ordered sets
    for urn, node_id in node_of.items():
        placed[home[urn]][node_id] = None
    for key, group in groups.items():
        _place(group, list(placed.get(key, {})), nodes, resources)
    return groups[None], group_of, empty_nodes


def _place(
    group: Group, node_ids: list[str], nodes: Mapping[str, Node], resources: Resources
) -> None:
    """Put nodes in `group`; split them by cloud when the group spans two clouds."""
    ordered = sorted(node_ids, key=lambda n: _node_order(nodes[n], resources))
    clouds = {nodes[n].family for n in ordered} & set(SIDE_LABELS)
    if len(clouds) < 2:
        group.nodes.extend(ordered)
        return
    sides: dict[str, Group] = {}
    for node_id in ordered:
        family = nodes[node_id].family
        if family not in SIDE_LABELS:
            group.nodes.append(node_id)
            continue
        if family not in sides:
            sides[family] = Group(
                f"{group.id}_{family}" if group.id != "root" else f"cluster_side_{family}",
                (SIDE_LABELS[family],),
                "#ffffff00",
                STROKE[family],
                dashed=True,
            )
        sides[family].nodes.append(node_id)
    order = list(SIDE_LABELS)
    group.groups[:0] = [sides[f] for f in sorted(sides, key=order.index)]


def _edges(
    resources: Resources,
    drawn: set[str],
    anchors: Mapping[str, str],
    home: Mapping[str, str | None],
    group_of: Mapping[str, str],
    below: Mapping[str, frozenset[str]],
) -> tuple[Edge, ...]:
    edges: dict[tuple[str, str], str] = {}
    one_provider = _single_provider_components(resources, below)

    def add(tail: str | None, head: str | None, style: str) -> None:
        if tail and head and tail != head and (tail, head) not in edges:
            edges[(tail, head)] = style

    for urn in sorted(drawn):
        r = resources[urn]
        here = anchors.get(urn)
        for tail in _dependency_tails(urn, r["dependencies"], below, home, anchors):
            add(tail, here, "dependency")
        parent = r["parent"]
        if parent in drawn and resources[parent]["custom"]:
            add(anchors.get(parent), here, "parent")
        provider = resources.get(r.get("provider") or "")
        if provider is not None:
            # One edge to the whole component when it all runs on this provider (a Prod on
            # its cluster), else to the resource itself.
            owner = home[urn]
            target = group_of.get(owner) if owner and owner in one_provider else here
            for dependency in provider["dependencies"]:
                add(anchors.get(dependency), target, "provider")
    return tuple(
        Edge(t, h, s)
        for (t, h), s in sorted(
            edges.items(), key=lambda kv: (_id_order(kv[0][0]), _id_order(kv[0][1]))
        )
    )


def _dependency_tails(
    urn: str,
    dependencies: Iterable[str],
    below: Mapping[str, frozenset[str]],
    home: Mapping[str, str | None],
    anchors: Mapping[str, str],
) -> list[str]:
    """Where the edges into `urn` start. `depends_on=[component]` reaches the engine as every
    resource in the component; those become one edge from the component's group."""
    remaining = {d for d in dependencies if d in anchors}
    candidates: set[str] = set()
    for dependency in remaining:
        above = home.get(dependency)
        while above is not None:
            candidates.add(above)
            above = home.get(above)
    tails = []
    for component in sorted(candidates, key=lambda c: (_depth(c, home), c)):
        members = below.get(component, frozenset())
        if len(members) >= COLLAPSE_AT and urn not in members and members <= remaining:
            tails.append(anchors[component])
            remaining -= members
    tails.extend(anchors[d] for d in sorted(remaining))
    return tails


def _custom_below(
    resources: Resources, drawn: set[str], home: Mapping[str, str | None]
) -> dict[str, frozenset[str]]:
    """Component → every custom resource drawn somewhere inside it."""
    found: dict[str, set[str]] = defaultdict(set)
    for urn in drawn:
        if resources[urn]["custom"]:
            above = home[urn]
            while above is not None:
                found[above].add(urn)
                above = home.get(above)
    return {c: frozenset(urns) for c, urns in found.items()}


def _single_provider_components(
    resources: Resources, below: Mapping[str, frozenset[str]]
) -> set[str]:
    return {
        component
        for component, urns in below.items()
        if len({resources[u].get("provider") for u in urns}) == 1
    }


def _depth(urn: str, home: Mapping[str, str | None]) -> int:
    depth, above = 0, home.get(urn)
    while above is not None:
        depth, above = depth + 1, home.get(above)
    return depth


def _group_style(type_: str) -> tuple[str, str]:
    if type_ in GROUP_STYLE:
        return GROUP_STYLE[type_]
    if type_.startswith(kinds.CLUSTERS_PREFIX):
        return CLUSTER_STYLE
    return PLAIN_STYLE


def _group_lines(urn: str, resources: Resources) -> tuple[str, ...]:
    r = resources[urn]
    heading = kinds.title(r["type"], r["name"])
    if r["type"] == kinds.WEIGHTED_DNS:
        return (heading, *_weights(urn, resources))
    return (heading,)


def _weights(urn: str, resources: Resources) -> tuple[str, ...]:
    """`shop.example.net  octavia 90 / nlb 10`, read from the component's weighted records."""
    records = [
        r
        for r in resources.values()
        if r["parent"] == urn and r["type"] == "aws:route53/record:Record"
    ]
    names = sorted({str(r["inputs"].get("name")) for r in records if r["inputs"].get("name")})
    split = " / ".join(
        f"{side} {kinds.lookup(r['inputs'], 'weightedRoutingPolicies[0].weight')}"
        for side, r in sorted(
            ((str(r["inputs"].get("setIdentifier")), r) for r in records),
            key=lambda pair: (pair[0] != "octavia", pair[0]),
        )
        if side != "None"
    )
    return tuple(x for x in (", ".join(names), split) if x)


def _detail(r: Mapping[str, Any]) -> list[str]:
    pairs = kinds.key_inputs(r["type"], r["name"], r["inputs"], r["custom"])[:DETAIL_KEYS]
    return [" ".join(f"{k}={kinds.format_value(v, 28)}" for k, v in pairs)] if pairs else []


def _node_order(node: Node, resources: Resources) -> tuple[Any, ...]:
    r = resources[node.urns[0]]
    return kinds.sort_key(r["type"], r["name"], r["custom"])


def _id_order(node_id: str) -> tuple[str, int]:
    prefix = node_id.rstrip("0123456789")
    digits = node_id[len(prefix) :]
    return (prefix, int(digits) if digits else -1)


# --- writers -----------------------------------------------------------------------------------


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _dot_label(lines: Iterable[str]) -> str:
    return _q("\n".join(lines)).replace("\n", "\\n")


def _dot_group_body(group: Group, picture: Picture, indent: str) -> Iterable[str]:
    for node_id in group.nodes:
        node = picture.nodes[node_id]
        yield (
            f"{indent}{node.id} [label={_dot_label(node.lines)}, shape={node.shape}, "
            f'fillcolor="{FILL[node.family]}", color="{STROKE[node.family]}"];'
        )
    for sub in group.groups:
        style = '"rounded,dashed"' if sub.dashed else '"rounded,filled"'
        yield f"{indent}subgraph {sub.id} {{"
        yield (
            f"{indent}  graph [label={_dot_label(sub.lines)}, style={style}, "
            f'fillcolor="{sub.fill}", color="{sub.stroke}", fontsize=10, labeljust=l];'
        )
        yield from _dot_group_body(sub, picture, indent + "  ")
        yield f"{indent}}}"


def _dot_edge(
    edge: Edge, representative: Mapping[str, str | None], inside: Mapping[str, set[str]]
) -> str | None:
    """An edge; one that ends at a group is drawn to a node inside it, clipped at its border."""
    attrs = []
    tail, head = edge.tail, edge.head
    if tail in representative:
        if head in inside[tail]:
            return None
        attrs.append(f"ltail={tail}")
        tail = representative[tail] or tail
    if head in representative:
        if edge.tail in inside[head] or tail in inside[head]:
            return None
        attrs.append(f"lhead={head}")
        head = representative[head] or head
    if edge.style == "parent":
        attrs.append("style=dotted, arrowhead=none")
    elif edge.style == "provider":
        attrs.append('style=dashed, color="#5b7bb5"')
    suffix = f" [{', '.join(attrs)}]" if attrs else ""
    return f"{tail} -> {head}{suffix};"


def _mermaid_text(lines: Iterable[str]) -> str:
    escaped = [
        line.replace("&", "#amp;").replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")
        for line in lines
    ]
    return '"' + "<br/>".join(escaped) + '"'


def _mermaid_group_body(group: Group, picture: Picture, indent: str) -> Iterable[str]:
    for node_id in group.nodes:
        node = picture.nodes[node_id]
        yield f"{indent}{node.id}[{_mermaid_text(node.lines)}]"
    for sub in group.groups:
        yield f"{indent}subgraph {sub.id}[{_mermaid_text(sub.lines)}]"
        yield f"{indent}  direction LR"
        yield from _mermaid_group_body(sub, picture, indent + "  ")
        yield f"{indent}end"
