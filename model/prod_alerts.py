"""The monitoring of one Prod (pure): its alert rules, the scrape that feeds them, and what the
wave gate asks Prometheus to be sure the rules have data.

Two alerts, each labelled `hybrid_infra_prod=<Prod>` (the gate's ALERT_LABEL), so a wave is held
back exactly while its own Prods are unwell:

- `ProdErrorRate`: the share of the Prod's requests answered with an error
  (`app.alerts.errorsMatcher` on `app.alerts.requestsMetric`) above `errorRatioPercent` for
  `forMinutes`;
- `ProdUnavailable`: the Prod's Deployment has no available replica for `forMinutes`
  (kube-state-metrics' `kube_deployment_status_replicas_available`).

The PodMonitor scrapes `app.metrics.path` on the Prod's Pods and copies their label
`hybrid-infra/prod` onto every series (`podTargetLabels`; the operator turns each character a
label name cannot hold into `_`, so it arrives as `hybrid_infra_prod`). The error-rate rule and
the gate select the Prod's series by that label: an alert that cannot fire for want of samples
is what the gate calls blind.

Both are `monitoring.coreos.com/v1` objects in the Prod's namespace: the cluster needs the
Prometheus operator (`clusters.<name>.monitoring: prometheus-operator`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from model.config import AppAlerts, AppMetrics
from model.release import ALERT_LABEL


def prod_alert_rules(
    prod: str, namespace: str, deployment: str, alerts: AppAlerts
) -> dict[str, Any]:
    """The PrometheusRule `spec` for one Prod."""
    requests = requests_selector(prod, alerts)
    errors = requests_selector(prod, alerts, alerts.errors_matcher)
    labels = {ALERT_LABEL: prod, "severity": "page"}
    window = f"{alerts.for_minutes}m"
    return {
        "groups": [
            {
                "name": f"hybrid-infra-prod-{prod.lower()}",
                "rules": [
                    {
                        "alert": "ProdErrorRate",
                        "expr": (
                            f"sum(rate({errors}[{window}])) / sum(rate({requests}[{window}])) "
                            f"> {alerts.error_ratio_percent / 100:g}"
                        ),
                        "for": window,
                        "labels": labels,
                        "annotations": {
                            "summary": f"{prod}: over {alerts.error_ratio_percent:g}% of "
                            "requests fail; the release wave is held back"
                        },
                    },
                    {
                        "alert": "ProdUnavailable",
                        "expr": (
                            "kube_deployment_status_replicas_available"
                            f'{{namespace="{namespace}",deployment="{deployment}"}} < 1'
                        ),
                        "for": window,
                        "labels": labels,
                        "annotations": {"summary": f"{prod}: no replica available"},
                    },
                ],
            }
        ]
    }


def pod_monitor(
    selector: Mapping[str, str], prod_label: str, port: str, metrics: AppMetrics
) -> dict[str, Any]:
    """The PodMonitor `spec` for one Prod: its Pods (`selector`), on the named container `port`.

    A PodMonitor rather than a ServiceMonitor: it follows the Pods whatever Services front
    them, so a second Service for the same Pods never scrapes them twice.
    """
    return {
        "selector": {"matchLabels": dict(selector)},
        "podTargetLabels": [prod_label],
        "podMetricsEndpoints": [{"port": port, "path": metrics.path}],
    }


def requests_selector(prod: str, alerts: AppAlerts, *matchers: str) -> str:
    """The series of the Prod's requests (narrowed by `matchers`), as the rules select them."""
    prod_matcher = f"{ALERT_LABEL}={_promql_string(prod)}"
    return f"{alerts.requests_metric}{{{','.join((prod_matcher, *matchers))}}}"


def samples_query(prods: Iterable[str], alerts: AppAlerts) -> str:
    """One series per Prod of `prods` whose requests Prometheus holds a sample of now.

    An instant query sees a series only while it is scraped (Prometheus marks a series that
    left its target stale at once), so a Prod that stopped being scraped drops out.
    """
    names = sorted(set(prods))
    pattern = "|".join(re.escape(n) for n in names)
    return (
        f"count by ({ALERT_LABEL}) "
        f"({alerts.requests_metric}{{{ALERT_LABEL}=~{_promql_string(pattern)}}})"
    )


def _promql_string(value: str) -> str:
    """A PromQL string literal (Go's escapes, which JSON's are a subset of)."""
    return json.dumps(value)
