"""The stack's outputs, as the last `pulumi up` exported them: what verify checks the live
platform against.

Read with `pulumi stack output --json --show-secrets` (the kubeconfigs are a secret output;
nothing here prints them), or from a file holding that command's output. Each part is parsed
on its own: a part that is missing or malformed (a stack never deployed, or deployed by an
older program version) becomes one `ERROR` row naming its key, and every other part is still
checked.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from model import stackfile
from model.config import AppAlerts
from model.stackfile import SECRET_PLACEHOLDER
from tools.verify.report import Row, error

T = TypeVar("T")
CHECK = "outputs"
AREAS_OF_PART: Mapping[str, tuple[str, ...]] = {
    "loadBalancers": ("dns", "nlb"),
    "kubeconfigs": ("clusters", "routing"),
    "clusters": ("clusters", "routing"),
    "releasePlan": ("clusters", "routing", "alerts"),
    "prods": ("clusters",),
    "routing": ("routing",),
    "edge": ("routing",),
    "alerts": ("alerts",),
}
"""Which areas read which part of the outputs: a problem there concerns only them."""
REDEPLOY = "the stack was never deployed, or by an older program version: run `pulumi up`"


class OutputsUnavailable(Exception):
    """The outputs cannot be read at all; the message is one line saying what to do."""


@dataclass(frozen=True, slots=True)
class Weights:
    octavia: int
    nlb: int


@dataclass(frozen=True, slots=True)
class Dns:
    zone: str
    weights: Weights
    octavia_address: str
    """What the `octavia` record answers: the VIP, or `dns.octaviaAddress` (its floating IP)."""


@dataclass(frozen=True, slots=True)
class Sync:
    """The member sync as the last `up` left it: what it binds, and the targets it owns."""

    loadbalancer_id: str
    bindings: tuple[tuple[str, str], ...]
    """(pool id, target group ARN) pairs."""
    owns_target_groups: bool
    owned: Mapping[str, frozenset[str]]


@dataclass(frozen=True, slots=True)
class LoadBalancer:
    name: str
    fqdn: str
    nlb_dns_name: str
    dns: Dns | None
    sync: Sync | None


@dataclass(frozen=True, slots=True)
class Cluster:
    name: str
    kind: str
    endpoint: str
    kubeconfig: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class Prod:
    name: str
    cluster: str
    version: str
    namespace: str
    deployment: str


@dataclass(frozen=True, slots=True)
class Segment:
    name: str
    prods: tuple[str, ...]
    fallbacks: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Edge:
    header: str
    cookie: str | None
    default_segment: str
    clusters: tuple[str, ...]
    """Clusters that run an edge proxy (those that host Prods)."""
    service: str
    """`namespace/name` of the proxy's Service on each of them."""


@dataclass(frozen=True, slots=True)
class Outputs:
    aws_region: str | None = None
    openstack_cloud: str | None = None
    load_balancers: tuple[LoadBalancer, ...] = ()
    clusters: tuple[Cluster, ...] = ()
    kubeconfigs_missing: str | None = None
    """Why the outputs hold no kubeconfig at all (an older program, or read without
    `--show-secrets`): one line, for every cluster it leaves unchecked."""
    prods: tuple[Prod, ...] = ()
    segments: tuple[Segment, ...] = ()
    drained: frozenset[str] = frozenset()
    health_path: str = "/"
    edge: Edge | None = None
    alerts: AppAlerts | None = None
    """What each Prod's alert rules read (`app.alerts`)."""
    problems: tuple[Row, ...] = ()
    """One ERROR row per part that is missing or malformed."""
    focus: frozenset[str] | None = None
    """Only these clusters are checked themselves (see `focused`); None: all of them."""

    def focused(self, prods: Collection[str]) -> Outputs:
        """Only what concerns `prods`: them, their clusters, the segments they serve. The wave
        gate verifies the released waves so, and nothing a wave does not touch holds it."""
        kept = tuple(p for p in self.prods if p.name in prods)
        return replace(
            self,
            prods=kept,
            segments=tuple(s for s in self.segments if set(s.prods) & set(prods)),
            focus=frozenset(p.cluster for p in kept),
        )

    def problems_of(self, areas: Collection[str]) -> list[Row]:
        """The problems of the parts these areas read."""
        return [
            row
            for row in self.problems
            if set(AREAS_OF_PART.get(row.subject.partition(".")[0], ())) & set(areas)
        ]

    def cluster(self, name: str) -> Cluster | None:
        return next((c for c in self.clusters if c.name == name), None)

    def secrets(self) -> list[str]:
        """Every credential the outputs hold, for the redactor: whole kubeconfigs, and each
        token, key, certificate and password inside them."""
        found: list[str] = []
        for cluster in self.clusters:
            if cluster.kubeconfig:
                found.append(cluster.kubeconfig)
                found += _credentials_in(cluster.kubeconfig)
        return found


def from_pulumi(stack: str, cwd: Path, pulumi: str = "pulumi") -> Mapping[str, Any]:
    """`pulumi stack output --json --show-secrets`, run where the stack's backend is logged in."""
    command = [pulumi, "stack", "output", "--json", "--show-secrets", "--stack", stack]
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120)
    except FileNotFoundError as missing:
        raise OutputsUnavailable(
            f"`{pulumi}` not found: it reads stack {stack}'s outputs; install the Pulumi CLI"
        ) from missing
    except subprocess.TimeoutExpired as slow:
        raise OutputsUnavailable("`pulumi stack output` did not answer within 120 s") from slow
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise OutputsUnavailable(
            f"cannot read stack {stack}'s outputs (`pulumi stack output`): {reason}. Run where "
            "`pulumi` is logged in to the stack's backend"
        )
    return _document(done.stdout, f"`pulumi stack output` for {stack}")


def openstack_password(stack: str, cwd: Path, pulumi: str = "pulumi") -> str | None:
    """The stack's secret `openstack:password`, which the sync uses over the clouds.yaml
    entry's own; None when the stack file sets none (or it cannot be read: the entry's own
    password, or OS_PASSWORD, then applies)."""
    try:
        document = stackfile.read(stack, cwd).document
    except stackfile.StackFileError:
        return None
    if "openstack:password" not in (document.get("config") or {}):
        return None
    command = [pulumi, "config", "get", "openstack:password", "--stack", stack]
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.rstrip("\n") or None


def from_file(path: Path) -> Mapping[str, Any]:
    try:
        text = path.read_text()
    except OSError as unreadable:
        raise OutputsUnavailable(f"cannot read {path}: {unreadable.strerror}") from unreadable
    return _document(text, str(path))


def _document(text: str, source: str) -> Mapping[str, Any]:
    try:
        document = json.loads(text or "{}")
    except ValueError as bad:
        # No excerpt of the text: it may hold a kubeconfig.
        raise OutputsUnavailable(
            f"{source} is not JSON (line {getattr(bad, 'lineno', '?')}): write it with "
            "`pulumi stack output --json --show-secrets > FILE`"
        ) from bad
    if not isinstance(document, dict):
        raise OutputsUnavailable(f"{source} is not a JSON object of outputs")
    return document


# --- parsing ------------------------------------------------------------------------------


class _Missing(Exception):
    """A part lacks a key or has the wrong shape; `key` is its path in the outputs."""

    def __init__(self, key: str, why: str = "missing") -> None:
        super().__init__(f"{key}: {why}")
        self.key = key
        self.why = why


def _get(mapping: Any, key: str, path: str) -> Any:
    if not isinstance(mapping, Mapping):
        raise _Missing(path.rpartition(".")[0] or path, "not an object")
    value = mapping.get(key)
    if value is None:
        raise _Missing(path)
    return value


def parse(raw: Mapping[str, Any]) -> Outputs:
    """Every part that can be read; a problem row for each one that cannot."""
    problems: list[Row] = []

    def part(key: str, read: Callable[[], T]) -> T | None:
        try:
            return read()
        except _Missing as missing:
            problems.append(_problem(missing))
        except (TypeError, ValueError, KeyError, AttributeError) as bad:
            problems.append(error(CHECK, key, f"malformed ({type(bad).__name__}); {REDEPLOY}"))
        return None

    load_balancers = part("loadBalancers", lambda: _load_balancers(raw, problems)) or ()
    kubeconfigs: dict[str, str] = {}
    kubeconfigs_missing = None
    try:
        kubeconfigs = _kubeconfigs(raw)
    except _Missing as missing:  # said once, by the clusters it stops (`clusters.py`)
        kubeconfigs_missing = _problem(missing).detail
    clusters = part("clusters", lambda: _clusters(raw, kubeconfigs)) or ()
    prods = part("releasePlan", lambda: _prods(raw)) or ()
    routing = part("routing", lambda: _routing(raw)) or Routing()
    return Outputs(
        aws_region=raw.get("awsRegion"),
        openstack_cloud=raw.get("openstackCloud"),
        load_balancers=load_balancers,
        clusters=clusters,
        kubeconfigs_missing=kubeconfigs_missing,
        prods=prods,
        segments=routing.segments,
        drained=routing.drained,
        health_path=routing.health_path,
        edge=part("edge", lambda: _edge(raw)) if routing.segments else None,
        alerts=part("alerts", lambda: _alerts(raw)) if prods else None,
        problems=tuple(problems),
    )


@dataclass(frozen=True, slots=True)
class Routing:
    segments: tuple[Segment, ...] = ()
    drained: frozenset[str] = frozenset()
    health_path: str = "/"


def _problem(missing: _Missing) -> Row:
    if missing.why == "secret":
        return error(
            CHECK,
            missing.key,
            "shown as [secret]: read the outputs with `pulumi stack output --json "
            "--show-secrets` (or run verify with --stack)",
        )
    return error(CHECK, missing.key, f"{missing.why}; {REDEPLOY}")


def _kubeconfigs(raw: Mapping[str, Any]) -> dict[str, str]:
    value = raw.get("kubeconfigs")
    if value is None:
        if not raw.get("clusters"):
            return {}
        raise _Missing("kubeconfigs")
    if value == SECRET_PLACEHOLDER:
        raise _Missing("kubeconfigs", "secret")
    if not isinstance(value, Mapping):
        raise _Missing("kubeconfigs", "not an object of cluster → kubeconfig")
    return {str(k): str(v) for k, v in value.items() if v}


def _clusters(raw: Mapping[str, Any], kubeconfigs: Mapping[str, str]) -> tuple[Cluster, ...]:
    clusters = _get(raw, "clusters", "clusters")
    return tuple(
        Cluster(
            name=str(name),
            kind=str(_get(spec, "kind", f"clusters.{name}.kind")),
            endpoint=str(spec.get("endpoint") or ""),
            kubeconfig=kubeconfigs.get(str(name)),
        )
        for name, spec in sorted(clusters.items())
    )


def _load_balancers(raw: Mapping[str, Any], problems: list[Row]) -> tuple[LoadBalancer, ...]:
    found = _get(raw, "loadBalancers", "loadBalancers")
    return tuple(_load_balancer(name, found[name], problems) for name in sorted(found))


def _load_balancer(name: str, raw: Any, problems: list[Row]) -> LoadBalancer:
    path = f"loadBalancers.{name}"
    dns: Dns | None = None
    sync: Sync | None = None
    try:
        spec = _get(raw, "dns", f"{path}.dns")
        weights = _get(spec, "weights", f"{path}.dns.weights")
        dns = Dns(
            zone=str(_get(spec, "zone", f"{path}.dns.zone")),
            weights=Weights(int(weights["octavia"]), int(weights["nlb"])),
            octavia_address=str(_get(spec, "octaviaAddress", f"{path}.dns.octaviaAddress")),
        )
    except _Missing as missing:
        problems.append(_problem(missing))
    try:
        spec = _get(raw, "sync", f"{path}.sync")
        sync = Sync(
            loadbalancer_id=str(_get(spec, "loadbalancerId", f"{path}.sync.loadbalancerId")),
            bindings=tuple(
                (str(b["poolId"]), str(b["targetGroupArn"]))
                for b in _get(spec, "bindings", f"{path}.sync.bindings")
            ),
            owns_target_groups=bool(spec.get("ownsTargetGroups")),
            owned={str(k): frozenset(map(str, v)) for k, v in (spec.get("targets") or {}).items()},
        )
    except _Missing as missing:
        problems.append(_problem(missing))
    return LoadBalancer(
        name=name,
        fqdn=str(raw.get("fqdn") or "") if isinstance(raw, Mapping) else "",
        nlb_dns_name=str(raw.get("nlbDnsName") or "") if isinstance(raw, Mapping) else "",
        dns=dns,
        sync=sync,
    )


def _prods(raw: Mapping[str, Any]) -> tuple[Prod, ...]:
    plan = _get(raw, "releasePlan", "releasePlan")
    where = _get(raw, "prods", "prods") if _get(plan, "waves", "releasePlan.waves") else {}
    prods = []
    for wave in plan["waves"]:
        for planned in wave["prods"]:
            name = str(planned["prod"])
            placed = _get(where, name, f"prods.{name}")
            prods.append(
                Prod(
                    name=name,
                    cluster=str(planned["cluster"]),
                    version=str(planned["version"]),
                    namespace=str(_get(placed, "namespace", f"prods.{name}.namespace")),
                    deployment=str(_get(placed, "deployment", f"prods.{name}.deployment")),
                )
            )
    return tuple(sorted(prods, key=lambda p: p.name))


def _routing(raw: Mapping[str, Any]) -> Routing:
    routing = _get(raw, "routing", "routing")
    segments = _get(routing, "segments", "routing.segments")
    return Routing(
        segments=tuple(
            Segment(
                name=str(name),
                prods=tuple(str(r["prod"]) for r in table["routes"]),
                fallbacks=tuple(str(r["prod"]) for r in table.get("fallbacks") or ()),
            )
            for name, table in sorted(segments.items())
        ),
        drained=frozenset(map(str, routing.get("drainedClusters") or ())),
        health_path=str(routing.get("healthPath") or "/"),
    )


def _alerts(raw: Mapping[str, Any]) -> AppAlerts:
    return AppAlerts.model_validate(_get(raw, "alerts", "alerts"))


def _edge(raw: Mapping[str, Any]) -> Edge:
    edge = _get(raw, "edge", "edge")
    return Edge(
        header=str(_get(edge, "header", "edge.header")),
        cookie=str(edge["cookie"]) if edge.get("cookie") else None,
        default_segment=str(_get(edge, "defaultSegment", "edge.defaultSegment")),
        clusters=tuple(map(str, _get(edge, "clusters", "edge.clusters"))),
        service=str(_get(edge, "service", "edge.service")),
    )


CREDENTIAL_KEYS = frozenset(
    {"token", "client-key-data", "client-certificate-data", "password", "username"}
)


def _credentials_in(kubeconfig: str) -> list[str]:
    """The credential values inside a kubeconfig (every user's token, key, certificate)."""
    import yaml

    try:
        document = yaml.safe_load(kubeconfig)
    except yaml.YAMLError:
        return []  # the whole text is redacted anyway
    found = []
    for user in (document or {}).get("users") or () if isinstance(document, dict) else ():
        for key, value in ((user or {}).get("user") or {}).items():
            if key in CREDENTIAL_KEYS and isinstance(value, str):
                found.append(value)
    return found
