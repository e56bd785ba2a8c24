"""The alert rules of one Prod (pure): what the wave gate asks Alertmanager about.

Two alerts, each labelled `hybrid_infra_prod=<Prod>` (the gate's ALERT_LABEL), so a wave is held
back exactly while its own Prods are unwell:

- `ProdErrorRate`: the share of requests answered with an error (`app.alerts.errorsMatcher` on
  `app.alerts.requestsMetric`) above `errorRatioPercent` for `forMinutes`;
- `ProdUnavailable`: the Prod's Deployment has no available replica for `forMinutes`
  (kube-state-metrics' `kube_deployment_status_replicas_available`).

They are shipped as a `monitoring.coreos.com/v1` PrometheusRule in the Prod's namespace, so a
fresh platform has them (the clusters need the Prometheus operator's CRDs).
"""

from __future__ import annotations

from typing import Any

from model.config import AppAlerts
from model.release import ALERT_LABEL


def prod_alert_rules(
    prod: str, namespace: str, deployment: str, alerts: AppAlerts
) -> dict[str, Any]:
    """The PrometheusRule `spec` for one Prod."""
    requests = f'{alerts.requests_metric}{{namespace="{namespace}"}}'
    errors = f'{alerts.requests_metric}{{namespace="{namespace}",{alerts.errors_matcher}}}'
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
