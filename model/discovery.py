"""Self-service twins: an Octavia LB tagged `hybrid-infra/twin` is built as an adopt-mode entry
of `loadBalancers` would be, from its tags and the stack's discovery defaults. Pure: the listing
and the last `up`'s view of each twin come in, the specs and the skipped LBs go out.

Tags a service team sets (`openstack loadbalancer set --tag KEY=VALUE <lb>`):

| tag | meaning | default |
| --- | --- | --- |
| `hybrid-infra/twin` | give this LB a twin (the marker; `discovery.tag`) | required |
| `hybrid-infra/address=IP` | the VIP's public (floating) address for the record | required |
| `hybrid-infra/record=LABEL` | the DNS label | the LB's name |
| `hybrid-infra/zone=ZONE` | the Route53 zone (`defaults.zone`, `allowZones`) | `defaults.zone` |
| `hybrid-infra/weights=O-N` | Octavia and NLB weights, e.g. `90-10` | `defaults.weights` |
| `hybrid-infra/check-port=PORT` | the port Route53 checks | `defaults.checkPort` |
| `hybrid-infra/scheme=SCHEME` | `internet-facing` for an LB in `allowPublic` | `internal` |

The fence: a twin is internal unless the stack file lists its LB in `discovery.allowPublic`, its
zone is one the stack file allows, and it never carries a management port
(`model.nlb_mapping.without_management_ports`). A team asks; the stack file, which is reviewed,
allows.

Only the marker decides whether a twin exists. A tag value that cannot be used is replaced, with
a warning naming the tag: by the value the last `up` used (`LastUp`, from the stack's own
`discovered` output), else by the stack default. An LB is skipped only when neither exists, so a
twin that the last `up` built is never removed by a typo. A twin keeps its name (its resources'
identity) when the LB is renamed, and, in a stack that protects its records, keeps its DNS name
until `discovery.allowMoves` lists the LB. A new LB whose scheme tag is refused is skipped, never
built internal behind a record its team meant for the internet.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from pydantic import ValidationError

from model.config import Discovery, LoadBalancerSpec
from model.octavia import TaggedLoadBalancer

PREFIX = "hybrid-infra/"
KEYS = ("address", "record", "zone", "weights", "check-port", "scheme")
MOVES = ("record", "zone")
"""Tags that name the DNS records: Route53 cannot rename a record, so a change replaces it."""
ASKS = ("scheme",)
"""Tags whose refused value skips a new LB instead of falling back to the stack default."""
LAST_UP = "the last up"
DEFAULT = "the stack default"


@dataclass(frozen=True, slots=True)
class LastUp:
    """A twin as the last `up` built it: its name and the tag values it used."""

    name: str
    tags: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Fallback:
    """A tag value the twin does not use, and what it uses instead."""

    key: str
    value: str | None
    """The tag's value; None when the LB has no such tag."""
    reason: str
    used: str | None
    """The value used instead; None for the stack default."""
    source: str

    def message(self) -> str:
        if self.source == DEFAULT:
            return f"{self.reason}; using the stack default"
        kept = self.used if self.used is not None else "the stack default"
        return f"{self.reason}; kept {kept}, as the last up had it"


@dataclass(frozen=True, slots=True)
class Discovered:
    loadbalancer_id: str
    spec: LoadBalancerSpec
    tags: dict[str, str]
    """The tag values used, fallbacks included (the stack outputs; the next run's `LastUp`)."""
    octavia_name: str = ""
    fallbacks: tuple[Fallback, ...] = ()
    moves_dns: bool = False
    """Its DNS name differs from the last up's, so this `up` replaces its records."""

    def warnings(self) -> list[str]:
        lines = [f"{self._label()}: {f.message()}" for f in self.fallbacks]
        if self.octavia_name and self.octavia_name != self.spec.name:
            lines.append(
                f"{self._label()}: the twin keeps its name {self.spec.name}, the identity of "
                "its resources; to rename it, remove the marker tag, run up, and tag it again"
            )
        return lines

    def _label(self) -> str:
        return f"tagged Octavia LB {self.octavia_name or self.spec.name} ({self.loadbalancer_id})"


@dataclass(frozen=True, slots=True)
class Skipped:
    loadbalancer_id: str
    name: str
    reason: str

    def message(self) -> str:
        return (
            f"tagged Octavia LB {self.name or '(no name)'} ({self.loadbalancer_id}): {self.reason}"
        )


@dataclass(frozen=True, slots=True)
class Taken:
    """Names and DNS names a new twin must not take (the stack file's, then earlier twins')."""

    names: set[str] = field(default_factory=set)
    fqdns: set[str] = field(default_factory=set)


def last_up(discovered: Any) -> dict[str, LastUp]:
    """LB id → its twin at the last `up`, from that up's `discovered` output. Anything of another
    shape (no output yet, an older program's) is no history, never an error."""
    found: dict[str, LastUp] = {}
    if not isinstance(discovered, Mapping):
        return found
    for name, entry in discovered.items():
        if not isinstance(entry, Mapping) or not isinstance(entry.get("loadbalancerId"), str):
            continue
        tags = entry.get("tags")
        tags = tags if isinstance(tags, Mapping) else {}
        found[entry["loadbalancerId"]] = LastUp(
            str(name), {k: str(v) for k, v in tags.items() if k in KEYS}
        )
    return found


def as_tagged(previous: Mapping[str, LastUp], marker: str) -> list[TaggedLoadBalancer]:
    """The LBs the last `up` twinned, carrying the tags it used: what a listing would show if
    nothing had changed since (for a run that cannot list them)."""
    return [
        TaggedLoadBalancer(
            lb_id, last.name, (marker, *(f"{PREFIX}{k}={v}" for k, v in last.tags.items()))
        )
        for lb_id, last in sorted(previous.items(), key=lambda item: (item[1].name, item[0]))
    ]


def twins(
    tagged: Iterable[TaggedLoadBalancer],
    discovery: Discovery,
    declared_ids: Iterable[str],
    *,
    previous: Mapping[str, LastUp] | None = None,
    taken: Taken | None = None,
    protected: bool = False,
) -> tuple[list[Discovered], list[Skipped]]:
    """Specs for the tagged LBs; the ones the stack file lists are skipped (it wins).

    The LBs the last `up` built are planned first, so a newcomer never takes an existing twin's
    name or DNS name. `protected`: the stack protects its records, so a DNS move waits for
    `discovery.allowMoves`.
    """
    declared = {str(i) for i in declared_ids}
    previous = previous or {}
    taken = Taken(set(taken.names), set(taken.fqdns)) if taken else Taken()
    allowed = {str(i) for i in discovery.allow_moves}
    found: list[Discovered] = []
    skipped: list[Skipped] = []
    for lb in sorted(tagged, key=lambda lb: (lb.id not in previous, lb.name, lb.id)):
        if lb.id in declared:
            skipped.append(
                Skipped(lb.id, lb.name, "also listed in loadBalancers; built from there")
            )
            continue
        hold = protected and lb.id not in allowed
        twin = _twin(lb, discovery, previous.get(lb.id), taken, hold_moves=hold)
        if isinstance(twin, Skipped):
            skipped.append(twin)
            continue
        taken.names.add(twin.spec.name)
        taken.fqdns.add(twin.spec.dns.fqdn)
        found.append(twin)
    return sorted(found, key=lambda d: (d.spec.name, d.loadbalancer_id)), skipped


class TagError(ValueError):
    """A tag (or its absence) that the twin cannot use."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(reason)
        self.key = key


@dataclass(slots=True)
class _Choices:
    """For each tag, the values to try in order, each with where it comes from."""

    options: dict[str, list[tuple[str | None, str]]]
    reasons: dict[str, str] = field(default_factory=dict)
    at: dict[str, int] = field(default_factory=dict)

    def current(self) -> dict[str, str]:
        values = {k: self.options[k][self.at.get(k, 0)][0] for k in self.options}
        return {k: v for k, v in values.items() if v is not None}

    def advance(self, key: str, reason: str) -> bool:
        """Drop the value in use for `key`; False when there is nothing left to try."""
        self.reasons.setdefault(key, reason)
        self.at[key] = self.at.get(key, 0) + 1
        return self.at[key] < len(self.options[key])

    def fallbacks(self, raw: Mapping[str, str]) -> tuple[Fallback, ...]:
        return tuple(
            Fallback(key, raw.get(key), self.reasons[key], *self.options[key][i])
            for key, i in self.at.items()
            if i
        )


def _twin(
    lb: TaggedLoadBalancer,
    discovery: Discovery,
    known: LastUp | None,
    taken: Taken,
    *,
    hold_moves: bool,
) -> Discovered | Skipped:
    name = known.name if known else lb.name
    if name in taken.names:
        return Skipped(lb.id, lb.name, f"another LB is already named {name}")
    raw = _values(lb.tags)
    choices = _Choices({key: _options(key, raw, known) for key in KEYS})
    if known and hold_moves:
        _hold_moves(choices, raw, known, name, discovery)
    while True:
        values = choices.current()
        try:
            spec = LoadBalancerSpec.model_validate(_entry(name, lb.id, values, discovery))
            _check_fence(spec, lb.id, discovery)
            if spec.dns.fqdn in taken.fqdns:
                raise TagError("record", f"its DNS name {spec.dns.fqdn} is taken by another LB")
        except (ValidationError, TagError) as error:
            key, reason = _culprit(error, values)
            if key is None:
                return Skipped(lb.id, lb.name, reason)
            if not choices.advance(key, reason):
                return Skipped(lb.id, lb.name, choices.reasons[key])
            continue
        moves = known is not None and spec.dns.fqdn != _fqdn(known, name, discovery)
        return Discovered(lb.id, spec, values, lb.name, choices.fallbacks(raw), moves)


def _check_fence(spec: LoadBalancerSpec, loadbalancer_id: str, discovery: Discovery) -> None:
    """What a tag may ask but only the stack file may allow: a public twin, another zone."""
    if spec.nlb.scheme == "internet-facing" and UUID(loadbalancer_id) not in discovery.allow_public:
        raise TagError(
            "scheme",
            f"{PREFIX}scheme=internet-facing: this stack makes a twin internet-facing only for "
            f"the LBs in hybrid-infra:discovery.allowPublic; ask the platform team to list "
            f"{loadbalancer_id} there",
        )
    if spec.dns.zone not in discovery.zones:
        raise TagError(
            "zone",
            f"{PREFIX}zone={spec.dns.zone}: not a zone this stack allows "
            f"({', '.join(discovery.zones)}); ask the platform team to add it to "
            "hybrid-infra:discovery.allowZones",
        )


def _options(
    key: str, raw: Mapping[str, str], known: LastUp | None
) -> list[tuple[str | None, str]]:
    """A tag's value first; then the last up's value; the stack default (None) where a missing
    tag means the default, which is also the last resort for a bad value (except for what a new
    LB asks for, `ASKS`)."""
    last = known.tags.get(key) if known else None
    if key in raw:
        options: list[tuple[str | None, str]] = [(raw[key], "its tag")]
        if last is not None and last != raw[key]:
            options.append((last, LAST_UP))
        if key in ASKS and known is None:
            return options
        return [*options, (None, DEFAULT)]
    return [(None, DEFAULT), *([(last, LAST_UP)] if last is not None else [])]


def _hold_moves(
    choices: _Choices, raw: Mapping[str, str], known: LastUp, name: str, discovery: Discovery
) -> None:
    """The records are protected: a changed record or zone tag waits, as the last up had it."""
    for key in MOVES:
        wanted = raw.get(key, _default(key, name, discovery))
        had = known.tags.get(key, _default(key, name, discovery))
        if wanted != had:
            choices.options[key] = [(raw.get(key), "its tag"), (known.tags.get(key), LAST_UP)]
            tag = f"{PREFIX}{key}={raw[key]}" if key in raw else f"removing {PREFIX}{key}"
            choices.advance(
                key,
                f"{tag} would move the DNS name "
                f"{_fqdn(known, name, discovery)}, whose records this stack protects; it moves "
                "once hybrid-infra:discovery.allowMoves lists this LB",
            )


def _default(key: str, name: str, discovery: Discovery) -> str:
    return name if key == "record" else discovery.defaults.zone


def _fqdn(known: LastUp, name: str, discovery: Discovery) -> str:
    record = known.tags.get("record", _default("record", name, discovery))
    return f"{record}.{known.tags.get('zone', _default('zone', name, discovery))}"


def _values(tags: Iterable[str]) -> dict[str, str]:
    values = {}
    for tag in tags:
        key, sep, value = tag.removeprefix(PREFIX).partition("=")
        if tag.startswith(PREFIX) and sep and key in KEYS:
            values[key] = value
    return values


def _entry(
    name: str, loadbalancer_id: str, tags: Mapping[str, str], discovery: Discovery
) -> dict[str, Any]:
    """The `loadBalancers` entry the tags stand for, in the stack file's own shape."""
    defaults = discovery.defaults
    if "address" not in tags:
        raise TagError(
            "address",
            f"no {PREFIX}address=<public IP> tag: Route53 needs the VIP's floating address",
        )
    weights = defaults.weights.model_dump(by_alias=True)
    if "weights" in tags:
        octavia, sep, nlb = tags["weights"].partition("-")
        if not (sep and octavia.isdigit() and nlb.isdigit()):
            raise TagError(
                "weights", f"{PREFIX}weights={tags['weights']}: write it as OCTAVIA-NLB, e.g. 90-10"
            )
        weights = {"octavia": int(octavia), "nlb": int(nlb)}
    port = tags.get("check-port", defaults.check_port)
    if port is None:
        raise TagError(
            "check-port", f"no {PREFIX}check-port=<port> tag and no discovery.defaults.checkPort"
        )
    return {
        "name": name,
        "adopt": {"loadbalancerId": loadbalancer_id},
        "nlb": {
            **defaults.nlb.model_dump(by_alias=True),
            "scheme": tags.get("scheme", defaults.nlb.scheme),
        },
        "dns": {
            "zone": tags.get("zone", defaults.zone),
            "record": tags.get("record", name),
            "ttl": defaults.ttl,
            "weights": weights,
            "octaviaAddress": tags["address"],
            "healthCheck": {"protocol": defaults.health_check, "port": port},
        },
    }


TAG_OF_FIELD = {
    ("dns", "octaviaAddress"): "address",
    ("dns", "record"): "record",
    ("dns", "zone"): "zone",
    ("dns", "weights"): "weights",
    ("dns", "healthCheck"): "check-port",
    ("nlb", "scheme"): "scheme",
}
"""The field each tag fills in (`healthCheck` only through its port)."""


def _culprit(error: Exception, values: Mapping[str, str]) -> tuple[str | None, str]:
    """The tag to blame for `error` and why; None when no tag is (the LB's name, say)."""
    if isinstance(error, TagError):
        return error.key, str(error)
    assert isinstance(error, ValidationError)
    first = error.errors()[0]
    loc = [str(p) for p in first["loc"]]
    key = TAG_OF_FIELD.get((loc[0], loc[1])) if len(loc) > 1 else None
    if key is None:
        return None, f"{'.'.join(loc)}: {first['msg']} (from its tags)"
    shown = f"={values[key]}" if key in values else " (absent)"
    return key, f"{PREFIX}{key}{shown}: {first['msg']}"
