"""The alert rules every Prod ships with: checked and evaluated by the real `promtool` (Debian
package `prometheus`) against synthetic series, and present on every Prod of the program (mocks).
The alerts carry the label the wave gate filters on, so a wave waits exactly for its Prods."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from components.prod_alerts import prod_alert_rules
from model.config import AppAlerts
from model.release import ALERT_LABEL

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed: run scripts/system-packages.sh"
)
LABELS = {ALERT_LABEL: "C-1", "severity": "page"}


def rule_file(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(prod_alert_rules("C-1", "prod-c-1", "app", AppAlerts())))
    return path


@needs_promtool
def test_promtool_accepts_the_rules(tmp_path):
    done = subprocess.run(
        [PROMTOOL, "check", "rules", str(rule_file(tmp_path))], capture_output=True
    )
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()


@needs_promtool
def test_the_rules_fire_on_errors_and_on_no_replica_with_the_prods_label(tmp_path):
    """5% errors fire ProdErrorRate after 5 minutes; 1% does not; no replica fires ProdUnavailable;
    another Prod's errors fire nothing here."""
    series = {
        "failing": [
            ('http_requests_total{namespace="prod-c-1",code="200"}', "0+95x30"),
            ('http_requests_total{namespace="prod-c-1",code="500"}', "0+5x30"),
            (
                'kube_deployment_status_replicas_available{namespace="prod-c-1",deployment="app"}',
                "0x30",
            ),
        ],
        "healthy": [
            ('http_requests_total{namespace="prod-c-1",code="200"}', "0+99x30"),
            ('http_requests_total{namespace="prod-c-1",code="500"}', "0+1x30"),
            ('http_requests_total{namespace="prod-a-1",code="500"}', "0+50x30"),
            (
                'kube_deployment_status_replicas_available{namespace="prod-c-1",deployment="app"}',
                "3x30",
            ),
        ],
    }
    expected = {
        "ProdErrorRate": {
            "exp_labels": LABELS,
            "exp_annotations": {
                "summary": "C-1: over 2% of requests fail; the release wave is held back"
            },
        },
        "ProdUnavailable": {
            "exp_labels": {**LABELS, "namespace": "prod-c-1", "deployment": "app"},
            "exp_annotations": {"summary": "C-1: no replica available"},
        },
    }
    firing = {"failing": ["ProdErrorRate", "ProdUnavailable"], "healthy": []}
    tests = []
    for case, lines in series.items():
        tests.append(
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in lines],
                "alert_rule_test": [
                    {
                        "eval_time": "15m",
                        "alertname": name,
                        "exp_alerts": [expected[name]] if name in firing[case] else [],
                    }
                    for name in ("ProdErrorRate", "ProdUnavailable")
                ],
            }
        )
    rules = rule_file(tmp_path)
    spec = tmp_path / "test.yml"
    spec.write_text(yaml.safe_dump({"rule_files": [str(rules)], "tests": tests}))
    done = subprocess.run([PROMTOOL, "test", "rules", str(spec)], capture_output=True)
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()


def test_every_prod_ships_its_rules(synth):
    """Mocks, program shape."""
    result = synth("prod")
    rules = {
        r.name: r.inputs
        for r in result.resources
        if r.type == "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
    }
    assert set(rules) == {f"{p}-alerts" for p in ("A-1", "A-2", "B-1", "B-2", "C-1", "C-2")}
    for name, inputs in rules.items():
        prod = name.removesuffix("-alerts")
        labels = [r["labels"][ALERT_LABEL] for g in inputs["spec"]["groups"] for r in g["rules"]]
        assert labels == [prod, prod]
        assert inputs["metadata"]["namespace"] == f"prod-{prod.lower()}"
