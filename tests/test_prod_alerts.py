"""The alert rules every Prod ships with: checked and evaluated by the real `promtool` (Debian
package `prometheus`) against synthetic series, and present on every Prod of the program (mocks).
The alerts carry the label the wave gate filters on, so a wave waits exactly for its Prods."""

from __future__ import annotations

from pathlib import Path

import yaml

from model.config import AppAlerts
from model.prod_alerts import prod_alert_rules
from model.release import ALERT_LABEL
from tests.fixtures.promtool import needs_promtool, promtool, rule_test, run_rule_tests
from tests.synthesis import PROMETHEUS_RULE

LABELS = {ALERT_LABEL: "C-1", "severity": "page"}
REQUESTS = 'http_requests_total{{namespace="{namespace}",code="{code}"}}'
REPLICAS = 'kube_deployment_status_replicas_available{namespace="prod-c-1",deployment="app"}'


def rule_file(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(prod_alert_rules("C-1", "prod-c-1", "app", AppAlerts())))
    return path


@needs_promtool
def test_promtool_accepts_the_rules(tmp_path):
    done = promtool("check", "rules", str(rule_file(tmp_path)))
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()


@needs_promtool
def test_the_rules_fire_on_errors_and_on_no_replica_with_the_prods_label(tmp_path):
    """5% errors fire ProdErrorRate after 5 minutes; 1% does not; no replica fires ProdUnavailable;
    another Prod's errors fire nothing here."""
    error_rate = {
        "exp_labels": LABELS,
        "exp_annotations": {
            "summary": "C-1: over 2% of requests fail; the release wave is held back"
        },
    }
    unavailable = {
        "exp_labels": {**LABELS, "namespace": "prod-c-1", "deployment": "app"},
        "exp_annotations": {"summary": "C-1: no replica available"},
    }
    failing = rule_test(
        {
            REQUESTS.format(namespace="prod-c-1", code=200): "0+95x30",
            REQUESTS.format(namespace="prod-c-1", code=500): "0+5x30",
            REPLICAS: "0x30",
        },
        {"ProdErrorRate": [error_rate], "ProdUnavailable": [unavailable]},
        at="15m",
    )
    healthy = rule_test(
        {
            REQUESTS.format(namespace="prod-c-1", code=200): "0+99x30",
            REQUESTS.format(namespace="prod-c-1", code=500): "0+1x30",
            REQUESTS.format(namespace="prod-a-1", code=500): "0+50x30",
            REPLICAS: "3x30",
        },
        {"ProdErrorRate": [], "ProdUnavailable": []},
        at="15m",
    )
    done = run_rule_tests(rule_file(tmp_path), [failing, healthy])
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()


def test_every_prod_ships_its_rules(synth):
    """Mocks, program shape."""
    result = synth("prod")
    rules = {r.name: r.inputs for r in result.of_type(PROMETHEUS_RULE)}
    assert set(rules) == {f"{p}-alerts" for p in ("A-1", "A-2", "B-1", "B-2", "C-1", "C-2")}
    for name, inputs in rules.items():
        prod = name.removesuffix("-alerts")
        labels = [r["labels"][ALERT_LABEL] for g in inputs["spec"]["groups"] for r in g["rules"]]
        assert labels == [prod, prod]
        assert inputs["metadata"]["namespace"] == f"prod-{prod.lower()}"
