"""Self-service twins in the whole program under mocks (the program's shape), with the recorded
Octavia catalog."""

from __future__ import annotations

import functools
import io
import json
import uuid
from pathlib import Path

import grpc
import pytest

from model.discovery import last_up, twins
from tests.fixtures.program import synth_with
from tests.support.discovery import DISCOVERY, REPORTS, allowing, last_run, tagged
from tests.support.octavia_catalog import catalog_with_listener
from tests.support.synthesis import HYBRID_LB, NLB, RECORD, SECURITY_GROUP, descendants, one
from tools.synth import ProgramFailed, cli, snapshot, synthesize
from tools.synth.diff import diff
from tools.synth.synthesis import OCTAVIA_CATALOG, READ_STACK_OUTPUTS

# --- the fence: public twins, zones and management ports -----------------------------------


PUBLIC = "hybrid-infra/scheme=internet-facing"


ADDRESS = "hybrid-infra/address=192.0.2.60"


def test_a_twin_is_internal_and_a_public_one_needs_both_the_tag_and_the_stack_file():
    asks = tagged("ads", ADDRESS, PUBLIC)
    allowed = allowing(allow_public=(uuid.UUID(asks.id),))
    (twin,), _ = twins([asks], allowed, [])
    assert twin.spec.nlb.scheme == "internet-facing"
    assert twin.tags["scheme"] == "internet-facing"
    # Listed but not asked for: internal. Asked for but not listed: no twin at all, since an
    # internal one would serve a share of a record meant for the internet from private IPs.
    quiet = tagged("news", ADDRESS, lb_id=asks.id)
    assert twins([quiet], allowed, [])[0][0].spec.nlb.scheme == "internal"
    found, (skipped,) = twins([asks], DISCOVERY, [])
    assert found == []
    assert skipped.message() == (
        f"tagged Octavia LB ads ({asks.id}): hybrid-infra/scheme=internet-facing: this stack "
        "makes a twin internet-facing only for the LBs in hybrid-infra:discovery.allowPublic; "
        f"ask the platform team to list {asks.id} there"
    )
    typo = tagged("ads", ADDRESS, "hybrid-infra/scheme=public")
    assert twins([typo], allowed, [])[0] == []


def test_an_existing_twin_asking_for_the_internet_stays_and_a_revoked_one_turns_internal():
    lb_id = str(uuid.uuid4())
    allowed = allowing(allow_public=(uuid.UUID(lb_id),))
    before = last_run(tagged("ads", ADDRESS, lb_id=lb_id))
    (kept,), skipped = twins(
        [tagged("ads", ADDRESS, PUBLIC, lb_id=lb_id)], DISCOVERY, [], previous=before
    )
    assert skipped == [] and kept.spec.nlb.scheme == "internal"
    assert kept.warnings()[0].endswith(
        "ask the platform team to list " + lb_id + " there; using the stack default"
    )
    # Public while allowed; the allowance taken back wins over the last up and the tag.
    public = last_up(
        {
            "ads": {
                "loadbalancerId": lb_id,
                "tags": {"address": "192.0.2.60", "scheme": "internet-facing"},
            }
        }
    )
    asks = tagged("ads", ADDRESS, PUBLIC, lb_id=lb_id)
    assert twins([asks], allowed, [], previous=public)[0][0].spec.nlb.scheme == "internet-facing"
    (revoked,), _ = twins([asks], DISCOVERY, [], previous=public)
    assert revoked.spec.nlb.scheme == "internal"


def test_a_zone_tag_names_a_zone_the_stack_allows_or_the_default_is_used():
    lb = tagged("ads", ADDRESS, "hybrid-infra/zone=evil.example.com")
    (twin,), _ = twins([lb], DISCOVERY, [])
    assert twin.spec.dns.fqdn == "ads.example.net"
    assert twin.warnings() == [
        f"tagged Octavia LB ads ({lb.id}): hybrid-infra/zone=evil.example.com: not a zone this "
        "stack allows (example.net); ask the platform team to add it to "
        "hybrid-infra:discovery.allowZones; using the stack default"
    ]
    (moved,), _ = twins([lb], allowing(allow_zones=("evil.example.com",)), [])
    assert (moved.spec.dns.fqdn, moved.warnings()) == ("ads.evil.example.com", [])


def test_a_discovered_kubernetes_api_listener_never_reaches_the_twin_and_nothing_faces_the_world(
    tmp_path,
):
    """The reports team adds a 6443 listener (before: `0.0.0.0/0:6443` on an internet-facing
    twin). Now the twin is internal and carries 443 only; a warning names the LB and the port.
    Mocks: the program's shape."""
    catalog = catalog_with_listener(tmp_path, "reports", 6443, tags=TYPO[:2])
    result = synth_with(with_discovery, octavia_catalog=catalog)
    twin = descendants(result, one(result.of_type(HYBRID_LB), "reports"))
    (nlb,) = twin.of_type(NLB)
    assert nlb.inputs["internal"] is True
    (group,) = [g for g in twin.of_type(SECURITY_GROUP) if g.name == "reports-nlb"]
    assert [(r["fromPort"], r["cidrBlocks"]) for r in group.inputs["ingress"]] == [
        (443, ["10.10.0.0/16", "172.16.0.0/14"])
    ]
    assert [r["fromPort"] for r in group.inputs["egress"]] == [8443]
    assert any(
        f"hybrid-infra:discovery[{REPORTS}]: listener port-6443 on 6443 (Kubernetes API): a "
        "twin never carries a management port; not mirrored" in line
        for line in result.logs
    ), result.logs


def test_a_public_twin_opens_service_ports_to_the_world_and_never_a_management_port(tmp_path):
    """Allowed and asked for: internet-facing. Its 443 is open to the world; a listener on
    443 in front of members on 6443 (the cluster API under another number) is not mirrored."""
    catalog = catalog_with_listener(
        tmp_path, "reports", 8443, member_port=6443, tags=[*TYPO[:2], PUBLIC]
    )

    def public(raw: dict) -> None:
        with_discovery(raw)
        raw["discovery"]["allowPublic"] = [REPORTS]

    result = synth_with(public, octavia_catalog=catalog)
    twin = descendants(result, one(result.of_type(HYBRID_LB), "reports"))
    assert one(twin.of_type(NLB), "reports-nlb").inputs["internal"] is False
    (group,) = [g for g in twin.of_type(SECURITY_GROUP) if g.name == "reports-nlb"]
    assert [(r["fromPort"], r["cidrBlocks"]) for r in group.inputs["ingress"]] == [
        (443, ["0.0.0.0/0"])
    ]
    assert 6443 not in [r["fromPort"] for r in group.inputs["egress"]]
    assert any(
        "listener port-8443 in front of members on 6443 (Kubernetes API)" in line
        for line in result.logs
    )


# --- the whole program, with the recorded catalog ---------------------------------------------


def catalog_with(tmp_path: Path, name: str, tags: list[str]) -> Path:
    """The recorded catalog (devenv/octavia-catalog.json) with `name`'s tags replaced."""
    entries = json.loads(OCTAVIA_CATALOG.read_text())
    (entry,) = [e for e in entries.values() if e["name"] == name]
    entry["tags"] = tags
    path = tmp_path / "octavia-catalog.json"
    path.write_text(json.dumps(entries))
    return path


TYPO = ["hybrid-infra/twin", "hybrid-infra/address=192.0.2.50", "hybrid-infra/weights=95/5"]


def test_the_tag_typo_synth_diff_removes_nothing(tmp_path, monkeypatch):
    """The reports team writes `weights=95/5` for `95-5`, and a reviewer runs
    `tools.synth --stack dev --diff dev.json` (the old snapshot stands for the stack as
    deployed, so its outputs are the last up's): nothing is removed or changed, and the
    output names the ignored tag. Under mocks: the shape the engine would apply, not an `up`."""
    deployed = tmp_path / "dev.json"
    assert cli.main(["--stack", "dev", "--json", str(deployed)]) == 0
    typo = catalog_with(tmp_path, "reports", TYPO)
    monkeypatch.setattr(cli, "synthesize", functools.partial(synthesize, octavia_catalog=typo))
    shown = io.StringIO()
    assert cli.main(["--stack", "dev", "--diff", str(deployed)], out=shown) == 0
    lines = shown.getvalue().splitlines()
    assert lines[-1] == "0 to add, 0 to change, 0 to remove, 1 output change(s)"
    assert lines[-2].startswith("    discovered.reports.ignoredTags: (absent) → ")

    # Without the last up (a first run, or lost state) the twin still stays: the bad value
    # falls back to the stack default, so only the two weights change.
    first = snapshot.snapshot(synthesize("dev", octavia_catalog=typo))
    change = diff(snapshot.loads(deployed.read_text()), first)
    assert change.added == change.removed == ()
    assert {(c.name, p.path, p.new) for c in change.changed for p in c.changes} == {
        ("reports-dns-octavia", "inputs.weightedRoutingPolicies[0].weight", 90),
        ("reports-dns-nlb", "inputs.weightedRoutingPolicies[0].weight", 10),
    }


def with_discovery(raw: dict) -> None:
    """Prod, also discovering the recorded LBs tagged `hybrid-infra/twin` (reports)."""
    raw["discovery"] = {"defaults": {"zone": "example.net", "checkPort": 443}}


def test_only_removing_the_marker_removes_a_twin_and_prod_protects_its_nlb_and_records(
    tmp_path,
):
    """Under mocks this shows the flags, not the refusal: with protect in state, the engine
    refuses to delete the NLB and the two records the next run no longer declares."""
    deployed = synth_with(with_discovery)
    twin = descendants(deployed, one(deployed.of_type(HYBRID_LB), "reports"))
    protected = {(r.type, r.name) for r in twin.resources if r.protect}
    assert protected == {
        (NLB, "reports-nlb"),
        (RECORD, "reports-dns-octavia"),
        (RECORD, "reports-dns-nlb"),
    }
    # Address tag gone, record tag broken: the twin stays exactly as it was.
    bad = ["hybrid-infra/twin", "hybrid-infra/weights=95-5", "hybrid-infra/record=Re/ports"]
    kept = synth_with(
        with_discovery,
        octavia_catalog=catalog_with(tmp_path, "reports", bad),
        last_up=deployed.outputs,
    )
    change = diff(snapshot.snapshot(deployed), snapshot.snapshot(kept))
    assert change.added == change.removed == change.changed == ()
    untagged = catalog_with(tmp_path, "reports", TYPO[1:])
    gone = synth_with(with_discovery, octavia_catalog=untagged, last_up=deployed.outputs)
    assert "reports" not in {r.name for r in gone.of_type(HYBRID_LB)}


# --- against the real Octavia API -------------------------------------------------------------


def test_the_program_reads_its_own_last_outputs_and_stops_when_it_cannot():
    """The invoke is asked for this very stack; a backend that cannot answer stops the run,
    since without the last up a bad tag could remove a twin. Under mocks: the request the
    engine would get, not the engine's answer."""
    asked = []

    def answer(args):
        asked.append(args["name"])
        return {"outputs": {"discovered": {}}}

    synth_with(with_discovery, invokes={READ_STACK_OUTPUTS: answer})
    assert asked == ["prod"]  # mocks have no organization; a real engine gets org/project/prod

    class BackendDown(grpc.RpcError):
        """What the engine answers when its backend cannot be read (a gRPC error)."""

        def code(self):
            return grpc.StatusCode.UNKNOWN

        def details(self):
            return "backend unreachable"

    def unreachable(args):
        raise BackendDown()

    with pytest.raises(ProgramFailed) as failed:
        synth_with(with_discovery, invokes={READ_STACK_OUTPUTS: unreachable})
    assert str(failed.value.cause).startswith(
        "cannot read this stack's outputs from its last up (prod: "
    )
    assert "nothing was changed" in str(failed.value.cause)
