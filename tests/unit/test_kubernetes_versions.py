"""Kubernetes versions against their providers' end of support, on a fixed day: a minor past
its end is a config error at its key path, one within 60 days a warning that the program logs,
and the stack files as shipped are clean."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

import pytest

from model import fleet
from model import kubernetes_versions as kv
from model.config import ConfigError, parse_keys
from model.stack import parse, warnings
from model.stackfile import ROOT
from tests.fixtures.program import STACKS, raw_of
from tests.support.kubernetes_versions import K

TODAY = date(2026, 12, 4)


def problems(raw: dict[str, Any], today: date = TODAY) -> list[str]:
    with pytest.raises(ConfigError) as error:
        parse(raw, today=today)
    return error.value.problems


def warned(raw: dict[str, Any], today: date = TODAY) -> list[str]:
    return warnings(parse(raw, today=today), today=today)


def with_versions(**versions: str) -> dict[str, Any]:
    """The prod stack file with `clusters.<name>.kubernetesVersion` set; `G_pool` sets G's
    node pool version."""
    raw = raw_of("prod")
    for key, version in versions.items():
        if key == "G_pool":
            raw["clusters"]["G"]["nodePool"]["version"] = version
        else:
            raw["clusters"][key]["kubernetesVersion"] = version
    return raw


@pytest.mark.parametrize("stack", STACKS)
def test_the_shipped_stack_files_run_supported_versions_with_no_warning(stack):
    assert warned(raw_of(stack)) == []


def test_an_eks_minor_past_extended_support_is_a_config_error_naming_its_key():
    assert problems(with_versions(B="1.30")) == [
        f"{K}.B.kubernetesVersion: EKS 1.30 reached the end of extended support on 2026-07-23 "
        f"({kv.EKS_CALENDAR}): EKS upgrades such control planes itself and creates none at "
        "this minor; choose 1.32 or newer (1.35 or newer stays in standard support, without "
        "the extended-support charge)"
    ]


def test_a_gke_control_plane_and_node_pool_past_standard_support_are_errors():
    found = problems(with_versions(G="1.34", G_pool="1.34.9-gke.1287000"))
    assert [p.split(": ")[0] for p in found] == [
        f"{K}.G.kubernetesVersion",
        f"{K}.G.nodePool.version",
    ]
    assert all("GKE 1.34 reached the end of standard support on 2026-10-01" in p for p in found)
    assert all(p.endswith("choose 1.35 or newer") for p in found)


def findings(raw: dict[str, Any], today: date = TODAY) -> kv.VersionFindings:
    """The version rules alone, on a stack that may break other rules too."""
    return kv.check(fleet.clusters(parse_keys(raw)), today)


def test_the_eks_twin_is_checked_at_its_on_prem_clusters_key():
    """The twin runs its on-prem cluster's minor, so its error names that cluster's key; the
    on-prem side of 1.31 (upstream end of life 2025-11-11) only warns."""
    found = findings(with_versions(A="1.31"))
    (error,) = found.errors
    assert error.startswith(
        f"{K}.A.kubernetesVersion: the EKS twin A-eks runs this minor: EKS 1.31 reached the end "
        "of extended support on 2026-11-26"
    )
    (warning,) = found.warnings
    assert warning.startswith(
        f"{K}.A.kubernetesVersion: Kubernetes 1.31 reached the end of life on 2025-11-11"
    )


def test_an_on_prem_minor_past_end_of_life_warns_and_still_builds():
    """A new cluster next to it is the way off an old minor, and building it takes `up` runs
    that still carry the old cluster: an error would block the way out."""
    (warning,) = warned(with_versions(C="1.33"))
    assert warning == (
        f"{K}.C.kubernetesVersion: Kubernetes 1.33 reached the end of life on 2026-06-28 "
        f"({kv.UPSTREAM_RELEASES}): no more patch releases, security fixes included; move its "
        'Prods to a new cluster on 1.35 or newer (README, "Upgrading an on-prem cluster")'
    )


@pytest.mark.parametrize(
    ("days_left", "verdict"),
    [(61, "fine"), (60, "warning"), (1, "warning"), (0, "error"), (-1, "error")],
)
def test_within_sixty_days_of_its_end_a_minor_warns_and_on_its_end_day_it_fails(days_left, verdict):
    """GKE 1.35's standard support ends 2027-04-11."""
    today = date(2027, 4, 11) - timedelta(days=days_left)
    raw = with_versions(G_pool="1.35")
    if verdict == "error":
        assert any(p.startswith(f"{K}.G.kubernetesVersion: GKE 1.35") for p in problems(raw, today))
        return
    found = warned(raw, today)
    gke = [w for w in found if w.startswith(f"{K}.G.")]
    if verdict == "fine":
        assert gke == []
    else:
        assert gke == [
            f"{K}.{key}: GKE 1.35 reaches the end of standard support on 2027-04-11, in "
            f"{days_left} day(s) ({kv.GKE_SCHEDULE}); the support table has no later minor "
            "yet: add its row (model/kubernetes_versions.py) and move to it before then"
            for key in ("G.kubernetesVersion", "G.nodePool.version")
        ]


def test_a_minor_older_than_the_table_is_an_error_and_a_newer_one_a_warning():
    (older,) = problems(with_versions(B="1.28"))
    assert older.startswith(
        f"{K}.B.kubernetesVersion: EKS 1.28 is older than the support table's oldest minor, "
        "1.29, which reached the end of extended support on 2026-03-23"
    )
    (newer,) = warned(with_versions(B="1.37"))
    assert newer == (
        f"{K}.B.kubernetesVersion: EKS 1.37 is not in the support table "
        "(model/kubernetes_versions.py, newest 1.36), so its end of support is not checked; "
        f"add its row from {kv.EKS_CALENDAR}"
    )


@pytest.mark.parametrize(("pool", "fits"), [("1.36.1", False), ("1.33.13", True), ("1.32", False)])
def test_gke_nodes_run_at_most_two_minors_behind_the_control_plane_never_ahead(pool, fits):
    skew = [e for e in findings(with_versions(G="1.35", G_pool=pool)).errors if "under a" in e]
    assert skew == (
        []
        if fits
        else [
            f"{K}.G.nodePool.version: nodes at {kv.minor_of(pool)} under a 1.35 control plane; "
            "GKE takes node pools from two minors older than the control plane up to its own "
            f"minor ({kv.GKE_VERSIONING})"
        ]
    )


def test_every_cloud_has_one_row_per_minor_without_gaps_and_later_minors_end_later():
    for cloud in ("eks", "gke", "upstream"):
        rows = [r for r in kv.SUPPORT if r.cloud == cloud]
        minors = [int(r.minor.split(".")[1]) for r in rows]
        assert minors == list(range(minors[0], minors[0] + len(rows))), cloud
        assert [r.ends for r in rows] == sorted(r.ends for r in rows), cloud
        assert all(r.source.startswith("https://") for r in rows)
        assert all(
            (r.standard_ends is not None) == (cloud == "eks")
            and (r.standard_ends is None or r.standard_ends < r.ends)
            for r in rows
        )


def test_the_cloud_rules_page_lists_every_row_of_the_table():
    text = (ROOT / "docs" / "cloud-rules.md").read_text()
    for row in kv.SUPPORT:
        assert re.search(rf"\| {re.escape(row.minor)} \| {row.cloud} \| .*{row.ends}", text), row


def test_the_readme_shows_the_warning_the_prod_stack_gets_sixty_days_before_gke_1_35_ends():
    readme = (ROOT / "README.md").read_text()
    (shown,) = [line for line in readme.splitlines() if line.startswith("warning: hybrid-infra")]
    assert "On 2027-02-10, 60 days before GKE 1.35 ends" in readme
    (gke,) = [w for w in warned(raw_of("prod"), date(2027, 2, 10)) if ".G.kubernetes" in w]
    assert shown == f"warning: {gke}"
