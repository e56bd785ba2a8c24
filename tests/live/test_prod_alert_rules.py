"""The alert rules every Prod ships with, checked and evaluated by the real `promtool` (Debian
package `prometheus`) against synthetic series. The alerts carry the label the wave gate filters
on, so a wave waits exactly for its Prods."""

from __future__ import annotations

from pathlib import Path

import yaml

from model.config import AppAlerts
from model.prod_alerts import prod_alert_rules
from model.release import ALERT_LABEL
from tests.fixtures.promtool import needs_promtool, promtool, rule_test, run_rule_tests

LABELS = {ALERT_LABEL: "C-1", "severity": "page"}


# As the PodMonitor delivers them: the Pod label `hybrid-infra/prod` on every series.
REQUESTS = 'http_requests_total{{hybrid_infra_prod="{prod}",namespace="prod-{ns}",code="{code}"}}'


REPLICAS = 'kube_deployment_status_replicas_available{namespace="prod-c-1",deployment="app"}'


def rule_file(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(prod_alert_rules("C-1", "prod-c-1", "app", AppAlerts())))
    return path


def requests(prod: str, code: int) -> str:
    return REQUESTS.format(prod=prod, ns=prod.lower(), code=code)


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
        {requests("C-1", 200): "0+95x30", requests("C-1", 500): "0+5x30", REPLICAS: "0x30"},
        {"ProdErrorRate": [error_rate], "ProdUnavailable": [unavailable]},
        at="15m",
    )
    healthy = rule_test(
        {
            requests("C-1", 200): "0+99x30",
            requests("C-1", 500): "0+1x30",
            requests("C-10", 500): "0+50x30",
            requests("A-1", 500): "0+50x30",
            REPLICAS: "3x30",
        },
        {"ProdErrorRate": [], "ProdUnavailable": []},
        at="15m",
    )
    done = run_rule_tests(rule_file(tmp_path), [failing, healthy])
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()


@needs_promtool
def test_the_error_rate_reads_the_series_the_pod_monitor_labels(tmp_path):
    """Series without the Prod label (scraped by something other than the Prod's PodMonitor)
    are not the Prod's: the same 5% errors fire nothing."""
    unlabelled = 'http_requests_total{{namespace="prod-c-1",code="{code}"}}'
    case = rule_test(
        {unlabelled.format(code=200): "0+95x30", unlabelled.format(code=500): "0+5x30"},
        {"ProdErrorRate": []},
        at="15m",
    )
    done = run_rule_tests(rule_file(tmp_path), [case])
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
