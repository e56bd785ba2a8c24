"""Prods, segments and the release: every reference resolves, names and versions are valid
Kubernetes values, Prods and clusters hold their users even with clusters drained, and users get
only verified versions."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date

from model import fleet
from model.config import StackConfig, did_you_mean, duplicates, version_tag
from model.fleet import FleetCluster
from model.placement import Stranded, place, placement_for, roomiest, spare
from model.release import describe_waves, release_plan
from model.stackfile import PROJECT

_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$")
_DIGEST = re.compile(r"^(@sha256:[0-9a-f]{64})?$")


def problems(config: StackConfig, today: date) -> list[str]:
    """References first; the placement and the plan only once every reference resolves."""
    clusters = fleet.clusters(config)
    found = []
    for name, prod in config.prods.items():
        if prod.cluster not in clusters:
            found.append(
                f"{PROJECT}:prods.{name}.cluster: unknown cluster {prod.cluster!r}"
                f"{did_you_mean(prod.cluster, clusters)}"
            )
    segs = f"{PROJECT}:segments"
    for name in sorted(duplicates(s.name for s in config.segments)):
        found.append(f"{segs}: duplicate name {name!r}")
    for i, segment in enumerate(config.segments):
        for j, prod_name in enumerate(segment.prods):
            if prod_name not in config.prods:
                found.append(
                    f"{segs}[{i}].prods[{j}]: unknown prod {prod_name!r}"
                    f"{did_you_mean(prod_name, config.prods)}"
                )
        known = [config.prods[p].cluster for p in segment.prods if p in config.prods]
        if len(segment.prods) == 2 and len(known) == 2 and known[0] == known[1]:
            found.append(
                f"{segs}[{i}].prods: a redundant segment needs Prods on two different clusters "
                f"(both are on {known[0]!r})"
            )
    if config.prods and (config.app is None or config.release is None):
        found.append(f"{PROJECT}:prods: Prods need both the app and release keys")
    found.extend(_prods(config, clusters))
    return found


def _prods(config: StackConfig, clusters: Mapping[str, FleetCluster]) -> list[str]:
    """Prod, app and release rules, and where users go while clusters are drained.

    The placement and the release plan are only worked out once every Prod and segment
    reference resolves; the reference problems are reported above.
    """
    problems = []
    for name in sorted(duplicates(p.lower() for p in config.prods)):
        clash = sorted(p for p in config.prods if p.lower() == name)
        problems.append(
            f"{PROJECT}:prods: {' and '.join(clash)} differ only in case; their Kubernetes "
            f"namespaces (prod-{name}) would clash"
        )
    if config.app is not None:
        if ":" in config.app.image.rsplit("/", 1)[-1]:
            problems.append(
                f"{PROJECT}:app.image: give the image without a tag ({config.app.image!r}); "
                "each Prod's tag is the release version of its wave"
            )
        if int(config.app.max_surge.rstrip("%")) == 0:
            problems.append(
                f"{PROJECT}:app.maxSurge: must be above 0: rollouts never take a Pod away "
                "before its replacement is ready (maxUnavailable is 0), so they need room to surge"
            )
    if config.release is not None:
        for key, version in (
            ("version", config.release.version),
            ("previousVersion", config.release.previous_version),
        ):
            digest = version[len(version_tag(version)) :]
            if not _LABEL_VALUE.match(version_tag(version)) or not _DIGEST.match(digest):
                problems.append(
                    f"{PROJECT}:release.{key}: {version!r} must be an image tag that is also a "
                    "Kubernetes label value (letters, digits, '.', '_', '-'; at most 63; "
                    "starts and ends alphanumeric), optionally pinned by the image's digest "
                    "(2.3.1@sha256:<64 hex digits>)"
                )
    resolved = all(p.cluster in clusters for p in config.prods.values()) and all(
        p in config.prods for s in config.segments for p in s.prods
    )
    if resolved:
        problems.extend(_capacity(config, clusters))
        problems.extend(_placement(config, clusters))
        problems.extend(_release(config))
    return problems


def _capacity(config: StackConfig, clusters: Mapping[str, FleetCluster]) -> list[str]:
    """With nothing drained, every Prod must hold the segments configured on it."""
    nominal = place(config.prods, config.segments)
    problems = []
    for name, prod in config.prods.items():
        if nominal.load[name] > prod.capacity:
            served = ", ".join(s.name for s in config.segments if name in s.prods)
            problems.append(
                f"{PROJECT}:prods.{name}.capacity: {prod.capacity} is below the "
                f"{nominal.load[name]} users of the segments on it ({served}); a Prod of a "
                "redundant pair must carry its segment alone when the other fails"
            )
    for name, cluster in clusters.items():
        on_it = sorted(n for n, p in config.prods.items() if p.cluster == name)
        total = sum(config.prods[n].capacity for n in on_it)
        if total > cluster.spec.capacity:
            problems.append(
                f"{PROJECT}:clusters.{cluster.configured_as}.capacity: "
                f"{cluster.spec.capacity} users, but the Prods on {name} "
                f"({', '.join(on_it)}) are sized for {total}; raise the cluster's capacity "
                "(and its nodes) or move a Prod"
            )
    return problems


def _placement(config: StackConfig, clusters: Mapping[str, FleetCluster]) -> list[str]:
    """One line per drained cluster whose segments cannot go anywhere else."""
    placement = placement_for(config)
    if not placement.stranded:
        return []
    by_cluster: dict[str, list[Stranded]] = {}
    for stranded in placement.stranded:
        for cluster in sorted({clusters[c].configured_as for c in stranded.clusters}):
            by_cluster.setdefault(cluster, []).append(stranded)
    best_prod = roomiest(config.prods, placement.load, placement.drained, 0)
    best = (
        f"the most spare room is {spare(config.prods, placement.load, best_prod)} users on "
        f"{best_prod}"
        if best_prod is not None
        else "no Prod on a cluster that is not drained takes users"
    )
    problems = []
    for cluster, segments in sorted(by_cluster.items()):
        listed = ", ".join(f"{s.segment} ({s.users} users)" for s in segments)
        problems.append(
            f"{PROJECT}:clusters.{cluster}.drained: cannot re-place segment(s) {listed}: "
            "no Prod on a cluster that is not drained has that much spare capacity "
            f"({best}); raise a Prod's capacity, add a Prod, or undrain {cluster}"
        )
    return problems


def _release(config: StackConfig) -> list[str]:
    """Release rules that need the plan: the wave exists, and users get only verified versions."""
    if config.release is None or not config.prods:
        return []
    plan = release_plan(config)
    path = f"{PROJECT}:release"
    problems = []
    if plan.current > plan.last:
        problems.append(
            f"{path}.wave: {plan.current} is past the last wave ({plan.last}); "
            f"the plan is {describe_waves(plan)}"
        )
    if plan.current > plan.test_waves and not plan.verified:
        problems.append(
            f"{path}.verified: wave {plan.current} reaches users, but version "
            f"{plan.version} is not verified; verify it on the test Prod(s) and set "
            "verified: true, or set wave back"
        )
    return problems
