"""Which Kubernetes minor versions each kind of cluster may run, and until when (pure).

One row per cloud and minor version: the day its support ends and the page that says so.
`check` compares every cluster of the fleet with the table on a given day (the program passes
today's date, tests a fixed one) and returns errors and warnings, each naming its key path:

- **EKS** (configured clusters and the twins of on-prem clusters): the end of *extended*
  support, because the program leaves EKS's upgrade policy at its default, `EXTENDED`. Past it,
  EKS upgrades the control plane on its own and refuses new clusters at that version, so the
  stack file no longer says what runs: an error.
- **GKE** (the control plane and the node pool): the end of *standard* support. The clusters
  are in no release channel (`components/clusters/gke.py`), and extended support needs the
  Extended channel. Past it, GKE upgrades control plane and nodes on its own: an error.
- **On-prem (Magnum)**: upstream Kubernetes' end of life, after which the minor gets no patch
  release. Nothing upgrades or refuses the cluster then, and the way off an old minor is a new
  cluster next to it, built by `pulumi up` runs that still carry the old cluster's config
  (README, "Upgrading an on-prem cluster"). An error would block that very procedure, so past
  its end an on-prem minor is a warning on every run.

Within `WARN_DAYS` of its end a minor is a warning. A minor that the table does not know is an
error when it is older than every row (it ended before the oldest row did) and a warning when it
is newer than every row: the provider has shipped a minor since the table was written, which the
cloud itself still checks at create time; the warning asks for the row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

from model.config import ExistingClusterSpec, GkeClusterSpec
from model.fleet import FleetCluster
from model.stackfile import PROJECT

Cloud = Literal["eks", "gke", "upstream"]
WARN_DAYS = 60
"""A minor this close to its end gets a warning on every run, time enough to plan a move."""

EKS_CALENDAR = "https://docs.aws.amazon.com/eks/latest/userguide/kubernetes-versions.html"
GKE_SCHEDULE = "https://cloud.google.com/kubernetes-engine/docs/release-schedule"
UPSTREAM_RELEASES = "https://kubernetes.io/releases/"
GKE_VERSIONING = "https://cloud.google.com/kubernetes-engine/versioning"


@dataclass(frozen=True, slots=True)
class Support:
    """One minor version on one cloud: when its support ends, and who says so."""

    cloud: Cloud
    minor: str
    ends: date
    """The first day it is no longer supported (EKS: extended support ends)."""
    source: str
    standard_ends: date | None = None
    """EKS only: the day extended support, billed per cluster hour, begins."""


def _eks(minor: str, standard: date, extended: date) -> Support:
    return Support("eks", minor, extended, EKS_CALENDAR, standard_ends=standard)


SUPPORT: tuple[Support, ...] = (
    _eks("1.29", date(2025, 3, 23), date(2026, 3, 23)),
    _eks("1.30", date(2025, 7, 23), date(2026, 7, 23)),
    _eks("1.31", date(2025, 11, 26), date(2026, 11, 26)),
    _eks("1.32", date(2026, 3, 23), date(2027, 3, 23)),
    _eks("1.33", date(2026, 7, 29), date(2027, 7, 29)),
    _eks("1.34", date(2026, 12, 2), date(2027, 12, 2)),
    _eks("1.35", date(2027, 3, 27), date(2028, 3, 27)),
    # Released on EKS on 2026-06-02 (the standard-support release notes list it); the
    # calendar's rule gives 14 months of standard support, then 12 of extended.
    _eks("1.36", date(2027, 8, 2), date(2028, 8, 2)),
    # GKE's schedule gives estimates that it revises; these are the page's values as of 2026.
    Support("gke", "1.30", date(2025, 9, 30), GKE_SCHEDULE),
    Support("gke", "1.31", date(2026, 1, 16), GKE_SCHEDULE),
    Support("gke", "1.32", date(2026, 4, 11), GKE_SCHEDULE),
    Support("gke", "1.33", date(2026, 8, 3), GKE_SCHEDULE),
    Support("gke", "1.34", date(2026, 10, 1), GKE_SCHEDULE),
    Support("gke", "1.35", date(2027, 4, 11), GKE_SCHEDULE),
    Support("upstream", "1.29", date(2025, 2, 28), UPSTREAM_RELEASES),
    Support("upstream", "1.30", date(2025, 7, 15), UPSTREAM_RELEASES),
    Support("upstream", "1.31", date(2025, 11, 11), UPSTREAM_RELEASES),
    Support("upstream", "1.32", date(2026, 2, 28), UPSTREAM_RELEASES),
    Support("upstream", "1.33", date(2026, 6, 28), UPSTREAM_RELEASES),
    Support("upstream", "1.34", date(2026, 10, 27), UPSTREAM_RELEASES),
    Support("upstream", "1.35", date(2027, 2, 28), UPSTREAM_RELEASES),
    Support("upstream", "1.36", date(2027, 6, 28), UPSTREAM_RELEASES),
)

_NAMES: dict[Cloud, str] = {"eks": "EKS", "gke": "GKE", "upstream": "Kubernetes"}
_WHAT: dict[Cloud, str] = {"eks": "extended support", "gke": "standard support", "upstream": "life"}
_AFTER: dict[Cloud, str] = {
    "eks": "EKS upgrades such control planes itself and creates none at this minor",
    "gke": "GKE upgrades such control planes and their nodes itself",
    "upstream": "no more patch releases, security fixes included",
}


@dataclass(frozen=True, slots=True)
class VersionFindings:
    errors: tuple[str, ...]
    warnings: tuple[str, ...]


def check(clusters: Mapping[str, FleetCluster], today: date) -> VersionFindings:
    """Every cluster's Kubernetes minor (and a GKE node pool's) against `SUPPORT` on `today`."""
    errors: list[str] = []
    warnings: list[str] = []
    for cluster in clusters.values():
        spec = cluster.spec
        if isinstance(spec, ExistingClusterSpec):
            continue  # its owners upgrade it: the stack neither creates nor upgrades it
        path = f"{PROJECT}:clusters.{cluster.configured_as}"
        cloud: Cloud = "upstream" if spec.kind == "onprem" else spec.kind
        prefix = f"the EKS twin {cluster.name} runs this minor: " if cluster.twin_of else ""
        checked = [(f"{path}.kubernetesVersion", spec.kubernetes_version)]
        if isinstance(spec, GkeClusterSpec):
            checked.append((f"{path}.nodePool.version", spec.node_pool.version))
            errors.extend(_node_skew(path, spec))
        for key, version in checked:
            verdict = _verdict(cloud, minor_of(version), today)
            if verdict is None:
                continue
            error, message = verdict
            # Past its end an on-prem minor only warns: see the module docstring.
            is_error = error and cloud != "upstream"
            (errors if is_error else warnings).append(f"{key}: {prefix}{message}")
    return VersionFindings(tuple(errors), tuple(warnings))


def minor_of(version: str) -> str:
    """`1.35` of `1.35`, `1.35.8` or `1.35.8-gke.1225000`."""
    return ".".join(version.split("-", 1)[0].split(".")[:2])


def _verdict(cloud: Cloud, minor: str, today: date) -> tuple[bool, str] | None:
    """(is it past its end, what to say), or None when the minor is fine on `today`."""
    rows = sorted((r for r in SUPPORT if r.cloud == cloud), key=lambda r: _number(r.minor))
    name, what = f"{_NAMES[cloud]} {minor}", _WHAT[cloud]
    row = next((r for r in rows if r.minor == minor), None)
    if row is None:
        if rows and _number(minor) < _number(rows[0].minor):
            oldest = rows[0]
            return True, (
                f"{name} is older than the support table's oldest minor, {oldest.minor}, which "
                f"reached the end of {what} on {oldest.ends} ({oldest.source}): "
                f"{_AFTER[cloud]}; {_choose(rows, today)}"
            )
        newest = rows[-1] if rows else None
        return False, (
            f"{name} is not in the support table (model/kubernetes_versions.py, newest "
            f"{newest.minor if newest else 'none'}), so its end of support is not checked; "
            f"add its row from {newest.source if newest else 'the provider'}"
        )
    if today >= row.ends:
        return True, (
            f"{name} reached the end of {what} on {row.ends} ({row.source}): "
            f"{_AFTER[cloud]}; {_choose(rows, today)}"
        )
    left = (row.ends - today).days
    if left <= WARN_DAYS:
        return False, (
            f"{name} reaches the end of {what} on {row.ends}, in {left} day(s) "
            f"({row.source}); {_choose(rows, today)} before then"
        )
    return None


def _choose(rows: list[Support], today: date) -> str:
    """What to do: the oldest minor that stays supported past the warning window."""
    horizon = today + timedelta(days=WARN_DAYS)
    fine = [r for r in rows if r.ends > horizon]
    if not fine:
        return (
            "the support table has no later minor yet: add its row "
            "(model/kubernetes_versions.py) and move to it"
        )
    if fine[0].cloud == "upstream":
        return (
            f"move its Prods to a new cluster on {fine[0].minor} or newer (README, "
            '"Upgrading an on-prem cluster")'
        )
    standard = [r for r in fine if r.standard_ends is not None and r.standard_ends > horizon]
    if standard and standard[0] != fine[0]:
        return (
            f"choose {fine[0].minor} or newer ({standard[0].minor} or newer stays in standard "
            "support, without the extended-support charge)"
        )
    return f"choose {fine[0].minor} or newer"


def _node_skew(path: str, spec: GkeClusterSpec) -> list[str]:
    """GKE nodes run at most two minors behind the control plane, and never ahead of it."""
    plane, nodes = _number(spec.kubernetes_version), _number(minor_of(spec.node_pool.version))
    if plane[0] != nodes[0] or not 0 <= plane[1] - nodes[1] <= 2:
        return [
            f"{path}.nodePool.version: nodes at {minor_of(spec.node_pool.version)} under a "
            f"{spec.kubernetes_version} control plane; GKE takes node pools from two minors "
            f"older than the control plane up to its own minor ({GKE_VERSIONING})"
        ]
    return []


def _number(minor: str) -> tuple[int, int]:
    major, _, rest = minor.partition(".")
    return int(major), int(rest)
