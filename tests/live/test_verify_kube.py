"""`tools.verify`'s cluster checks against real local Kubernetes clusters (devenv.kube: a real
kube-apiserver, controller-manager and scheduler; kwok makes Pods Ready, so a Deployment really
rolls out and turns Available).

Each Prod is made as the Prod component makes it (namespace `prod-<name>`, Deployment, PDB and
HPA named `app`), through the API. A Prod at another version than the release plan's, or
missing its autoscaler, fails; an unreachable cluster and a refused token are one line each,
and the token never reaches the output.
"""

from __future__ import annotations

import datetime
import json
import secrets
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from devenv.kube import LocalCluster
from model.release import release_plan
from model.stackfile import ROOT
from tests.fixtures.verify_world import (
    Routing,
    deploy_prod,
    edge_service,
    outputs,
    roll,
)
from tools.release import gate, waves
from tools.verify import verify
from tools.verify.__main__ import main
from tools.verify.context import Context
from tools.verify.outputs import parse
from tools.verify.report import Row

pytestmark = pytest.mark.kube


def cluster_outputs(
    fleet: dict[str, LocalCluster], prods: dict[str, str], **kubeconfigs: str
) -> dict[str, Any]:
    raw = outputs(fleet=fleet, prods=prods)
    raw["kubeconfigs"].update(kubeconfigs)
    return raw


def rows_of(raw: dict[str, Any], areas: tuple[str, ...] = ("clusters",)) -> list[Row]:
    return verify(Context(parse(raw)), areas)


@pytest.fixture(scope="module")
def fleet(local_clusters: dict[str, LocalCluster]) -> Iterator[dict[str, LocalCluster]]:
    """Clusters A and C with the Prods A-1 and C-1 at 2.3.1, Available."""
    deploy_prod(local_clusters["A"], "A-1", "2.3.1")
    deploy_prod(local_clusters["C"], "C-1", "2.3.1")
    yield {"A": local_clusters["A"], "C": local_clusters["C"]}


def test_prods_available_at_the_plans_version_with_pdb_and_hpa_are_green(fleet):
    rows = rows_of(cluster_outputs(fleet, {"A-1": "A", "C-1": "C"}))
    assert [(r.check, r.subject, r.result) for r in rows] == [
        ("cluster", "A", "ok"),
        ("cluster", "C", "ok"),
        ("prod", "A-1", "ok"),
        ("prod", "C-1", "ok"),
    ]
    assert rows[0].detail.startswith("API answers: Kubernetes v")
    assert rows[2].detail == (
        "Available 2/2 at 2.3.1 on A; PDB (maxUnavailable 1, 1 disruption(s) allowed), "
        "HPA (2-6 replicas)"
    )


def test_a_prod_at_another_version_than_the_plans_fails(fleet):
    raw = cluster_outputs(fleet, {"A-1": "A", "C-1": "C"})
    raw["releasePlan"]["waves"][0]["prods"][0]["version"] = "2.4.0"
    rows = {r.subject: r for r in rows_of(raw)}
    assert rows["A-1"].result == "FAIL"
    assert rows["A-1"].detail == "runs 2.3.1, the release plan says 2.4.0"
    assert rows["C-1"].result == "ok"


def test_a_prod_rolled_to_another_image_fails_until_the_plan_says_so(fleet):
    cluster = fleet["C"]
    deploy_prod(cluster, "C-7", "2.3.1")
    roll(cluster, "C-7", "2.3.0")
    rows = {r.subject: r for r in rows_of(cluster_outputs({"C": cluster}, {"C-7": "C"}))}
    assert rows["C-7"].result == "FAIL"
    assert rows["C-7"].detail.startswith("runs 2.3.0, the release plan says 2.3.1")


def test_a_prod_without_its_autoscaler_fails(fleet):
    cluster = fleet["A"]
    deploy_prod(cluster, "A-8", "2.3.1")
    cluster.request(
        "DELETE", "/apis/autoscaling/v2/namespaces/prod-a-8/horizontalpodautoscalers/app"
    )
    rows = {r.subject: r for r in rows_of(cluster_outputs({"A": cluster}, {"A-8": "A"}))}
    assert rows["A-8"].result == "FAIL"
    assert rows["A-8"].detail == "no HorizontalPodAutoscaler app in prod-a-8 on A"


def test_the_edge_proxy_is_found_at_its_services_load_balancer(fleet, edges: Routing):
    """Without --edge, verify reads where each proxy is from its cluster's Service (here the
    stand-in load-balancer controller gives it 127.0.0.1, and the Service port is the real
    HAProxy's)."""
    for name, cluster in fleet.items():
        edge_service(cluster, edges.edges[name].port)
    raw = {**cluster_outputs(fleet, {"A-1": "A", "C-1": "C", "C-2": "C"}), **edges.outputs()}
    deadline = time.monotonic() + 30
    while True:
        rows = rows_of(raw, ("routing",))
        if all(r.result == "ok" for r in rows) or time.monotonic() > deadline:
            break
        time.sleep(0.5)  # the stand-in controller gives the address within a second
    assert [r for r in rows if r.result != "ok"] == []
    assert len(rows) == 8


def test_an_unreachable_cluster_is_one_line_and_the_others_are_still_checked(fresh_clusters):
    fleet = fresh_clusters("A", "B")
    deploy_prod(fleet["A"], "A-1", "2.3.1")
    deploy_prod(fleet["B"], "B-1", "2.3.1")
    deploy_prod(fleet["B"], "B-2", "2.3.1")
    fleet["B"].stop_apiserver()
    rows = rows_of(cluster_outputs(fleet, {"A-1": "A", "B-1": "B", "B-2": "B"}))
    assert [(r.check, r.subject, r.result) for r in rows] == [
        ("cluster", "A", "ok"),
        ("access", "cluster B", "ERROR"),
        ("prod", "A-1", "ok"),
    ]
    assert rows[1].detail.startswith(f"cluster B's API at {fleet['B'].server} does not answer")
    assert rows[1].detail.endswith("(not checked: 1 cluster, 2 prod)")


def test_a_refused_token_is_one_line_and_never_printed(fleet, tmp_path, capsys):
    token = f"hybrid-verify-{secrets.token_hex(16)}"
    kubeconfig = fleet["A"].kubeconfig.replace(fleet["A"].token, token)
    assert token in kubeconfig
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(cluster_outputs(fleet, {"A-1": "A", "C-1": "C"}, A=kubeconfig)))
    assert (
        main(["--stack", "verify", "--outputs", str(path), "--only", "clusters"], environ={}) == 1
    )
    out, err = capsys.readouterr()
    assert token not in out and token not in err
    (line,) = [line for line in out.splitlines() if "cluster A" in line]
    assert "refused the kubeconfig's credentials (401 Unauthorized: expired or revoked)" in line
    assert "prod     C-1" in out


def test_the_wave_gate_holds_until_verify_is_green_for_the_released_prods(
    fresh_clusters, edges: Routing, alertmanager, prometheus, tmp_path, capsys
):
    """At wave 2 C-2 and C-1 run the new version: the gate asks verify about them (and only
    them) before it advances. Real clusters, HAProxy, Alertmanager and Prometheus."""
    cluster = fresh_clusters("C")["C"]
    deploy_prod(cluster, "C-2", "2.3.1")
    deploy_prod(cluster, "C-1", "2.3.0")  # the rollout has not reached C-1
    prometheus.load_rules(["C-2", "C-1"])
    prometheus.serve({p: ['http_requests_total{code="200"} 7'] for p in ("C-2", "C-1")})
    raw = {
        **cluster_outputs({"C": cluster}, {"C-1": "C", "C-2": "C", "A-1": "A"}),
        **edges.outputs(),
    }
    text = (ROOT / "Pulumi.prod.yaml").read_text().replace("    wave: 4\n", "    wave: 2\n")
    (tmp_path / "Pulumi.prod.yaml").write_text(text)
    plan = release_plan(waves.load_config(text))
    applied = gate.Applied(
        plan.current, plan.version, datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    )
    asked: list[Sequence[str]] = []

    def verified(prods: Sequence[str]) -> list[Row]:
        asked.append(prods)
        return gate.verify_released(raw, prods, edges=edges.urls())

    args = ["--stack", "prod", "--root", str(tmp_path), "--advance"]
    args += ["--alertmanager", alertmanager.url, "--prometheus", prometheus.url]
    assert waves.main(args, environ={}, applied=lambda: applied, verified=verified) == 1
    err = capsys.readouterr().err
    assert "verify is not green for the released waves (C-2, C-1):" in err
    assert "  FAIL prod C-1: runs 2.3.0, the release plan says 2.3.1" in err
    assert "A-1" not in err  # not released yet: not asked about

    roll(cluster, "C-1", "2.3.1")
    assert waves.main(args, environ={}, applied=lambda: applied, verified=verified) == 0
    assert "verify is green for them" in capsys.readouterr().out
    assert [tuple(a) for a in asked] == [("C-2", "C-1")] * 2
