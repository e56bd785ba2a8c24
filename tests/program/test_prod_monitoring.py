"""The monitoring every Prod ships with, in the program (mocks: the program's shape): the
PodMonitor that feeds its rules, the config rule that a hosting cluster runs the Prometheus
operator, and routing that never waits on any of it."""

from __future__ import annotations

from typing import Any

import pytest

from components.prod import PROD_LABEL
from model.config import ConfigError
from model.release import ALERT_LABEL
from tests.fixtures.program import synth_with
from tests.support.synthesis import (
    CONFIGMAP,
    DEPLOYMENT,
    EDGE_PROXY,
    POD_MONITOR,
    PROD,
    PROMETHEUS_RULE,
    SERVICE,
    children_by_type,
    descendants,
    one,
)
from tools.synth import ProgramFailed

PRODS = ("A-1", "A-2", "B-1", "B-2", "C-1", "C-2")

# --- the program (mocks) ----------------------------------------------------------------------


def test_every_prod_ships_its_rules(synth):
    result = synth("prod")
    rules = {r.name: r.inputs for r in result.of_type(PROMETHEUS_RULE)}
    assert set(rules) == {f"{p}-alerts" for p in PRODS}
    for name, inputs in rules.items():
        prod = name.removesuffix("-alerts")
        labels = [r["labels"][ALERT_LABEL] for g in inputs["spec"]["groups"] for r in g["rules"]]
        assert labels == [prod, prod]
        assert inputs["metadata"]["namespace"] == f"prod-{prod.lower()}"


def test_every_prod_is_scraped_by_a_pod_monitor_of_its_own_pods(synth):
    """The monitor selects exactly the Deployment's Pods, on a port the container names, and
    copies the Pod label that becomes `hybrid_infra_prod` (the label the rules select by)."""
    result = synth("prod")
    for prod in PRODS:
        built = children_by_type(result, PROD, prod)
        monitor, deployment = built[POD_MONITOR].inputs, built[DEPLOYMENT].inputs
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        assert monitor["metadata"]["namespace"] == f"prod-{prod.lower()}"
        spec = monitor["spec"]
        assert spec["selector"] == deployment["spec"]["selector"]
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert spec["selector"]["matchLabels"].items() <= pod_labels.items()
        assert spec["podTargetLabels"] == [PROD_LABEL] and pod_labels[PROD_LABEL] == prod
        (endpoint,) = spec["podMetricsEndpoints"]
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert endpoint == {"port": "http", "path": "/metrics"}
        assert "http" in {p["name"] for p in container["ports"]}


def test_metrics_on_their_own_port_get_a_named_container_port_the_monitor_scrapes():
    def mutate(raw: dict[str, Any]) -> None:
        raw["app"]["metrics"] = {"path": "/internal/metrics", "port": 9102}

    result = synth_with(mutate)
    built = children_by_type(result, PROD, "C-1")
    (endpoint,) = built[POD_MONITOR].inputs["spec"]["podMetricsEndpoints"]
    assert endpoint == {"port": "metrics", "path": "/internal/metrics"}
    (container,) = built[DEPLOYMENT].inputs["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": 8080, "metrics": 9102}


def test_routing_and_edge_proxies_wait_for_the_prods_serving_parts_never_their_monitoring(synth):
    """A PrometheusRule or PodMonitor that a cluster refuses must not hold back where users go:
    the routing ConfigMaps and proxies depend on each Prod's Deployment and Service only."""
    result = synth("prod")
    prods = [one(result.of_type(PROD), p) for p in PRODS]
    below = [r for prod in prods for r in descendants(result, prod).resources]
    serving = {r.urn for r in below if r.type in (DEPLOYMENT, SERVICE)}
    monitoring = {r.urn for r in below if r.type in (PROMETHEUS_RULE, POD_MONITOR)}
    assert len(serving) == 12 and len(monitoring) == 12
    waiting = [r for r in result.of_type(CONFIGMAP) if r.name.endswith("-routing")]
    waiting += result.of_type(EDGE_PROXY)
    assert len(waiting) == 6  # a routing table and a proxy on each of A, B, C
    for resource in waiting:
        assert serving <= set(resource.dependencies), resource.name
        assert not monitoring & set(resource.dependencies), resource.name


def test_a_cluster_that_hosts_prods_without_the_prometheus_operator_is_refused_by_key():
    def mutate(raw: dict[str, Any]) -> None:
        del raw["clusters"]["C"]["monitoring"]  # the default: none

    with pytest.raises(ProgramFailed) as failed:
        synth_with(mutate)
    assert failed.value.registered == ()
    assert isinstance(failed.value.cause, ConfigError)
    assert failed.value.cause.problems == [
        "hybrid-infra:clusters.C.monitoring: C hosts Prod(s) C-1, C-2, and each ships alert "
        "rules and a PodMonitor (monitoring.coreos.com/v1) that the wave gate reads; install "
        "the Prometheus operator on C and set monitoring: prometheus-operator (got none)"
    ]


def test_a_twin_is_monitored_as_its_cluster_says():
    """Staging's E-1 runs on A-eks, the twin of A: A's key decides for both."""

    def mutate(raw: dict[str, Any]) -> None:
        raw["clusters"]["A"]["monitoring"] = "none"

    with pytest.raises(ProgramFailed) as failed:
        synth_with(mutate, stack="staging")
    assert isinstance(failed.value.cause, ConfigError)
    problems = failed.value.cause.problems
    assert [p.split(":", 2)[1] for p in problems] == ["clusters.A.monitoring"] * 2
    assert any(
        p.split(": ", 1)[1].startswith("A-eks (the twin of A) hosts Prod(s) E-1") for p in problems
    )
