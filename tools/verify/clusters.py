"""Clusters: each cluster's API answers, and each Prod runs the release plan's version.

Per cluster, the API's `/version` with the kubeconfig the stack exports (a secret output; an
exec kubeconfig runs `aws eks get-token` or `gke-gcloud-auth-plugin` as whoever runs verify).
Per Prod, its Deployment is Available, fully rolled out, at the version the release plan gives
its wave (the image tag), with its PodDisruptionBudget and HorizontalPodAutoscaler present.
A drained cluster is skipped: its users are served elsewhere, and it may be dead on purpose.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Mapping
from functools import partial
from typing import Any

import urllib3
import yaml
from kubernetes import client as kube
from kubernetes.client.exceptions import ApiException
from kubernetes.config import ConfigException, new_client_from_config_dict

from tools.verify.context import Context
from tools.verify.outputs import REDEPLOY, Cluster, Prod
from tools.verify.report import Row, fail, ok, skip
from tools.verify.runner import Probe, Unchecked

CLUSTER = "cluster"
PROD = "prod"


def probes(ctx: Context) -> list[Probe]:
    out = ctx.outputs
    found = [
        Probe(CLUSTER, c.name, partial(check_cluster, ctx, c))
        for c in out.clusters
        if out.focus is None or c.name in out.focus
    ]
    found += [
        Probe(PROD, p.name, partial(check_prod, ctx, p))
        for p in out.prods
        if p.cluster not in out.drained
    ]
    return found


# --- judging (pure) -------------------------------------------------------------------------


def judge_prod(
    prod: Prod,
    deployment: Mapping[str, Any] | None,
    budget: Mapping[str, Any] | None,
    autoscaler: Mapping[str, Any] | None,
) -> Row:
    where = f"{prod.namespace} on {prod.cluster}"
    if deployment is None:
        return fail(PROD, prod.name, f"no Deployment {prod.deployment} in {where}")
    problems = []
    version = _version(deployment, prod.deployment)
    if version != prod.version:
        problems.append(f"runs {version}, the release plan says {prod.version}")
    rollout = _rollout(deployment)
    if rollout:
        problems.append(rollout)
    if budget is None:
        problems.append(f"no PodDisruptionBudget {prod.deployment} in {where}")
    if autoscaler is None:
        problems.append(f"no HorizontalPodAutoscaler {prod.deployment} in {where}")
    if problems:
        return fail(PROD, prod.name, "; ".join(problems))
    status = deployment.get("status") or {}
    assert budget is not None and autoscaler is not None
    spec = autoscaler.get("spec") or {}
    return ok(
        PROD,
        prod.name,
        f"Available {status.get('availableReplicas', 0)}/{status.get('replicas', 0)} at "
        f"{version} on {prod.cluster}; PDB ({_budget(budget)}), HPA "
        f"({spec.get('minReplicas', 1)}-{spec.get('maxReplicas', '?')} replicas)",
    )


def _version(deployment: Mapping[str, Any], container: str) -> str:
    """The image tag of the Prod's container: the release version it runs."""
    containers = (((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}).get(
        "containers"
    ) or []
    chosen = next((c for c in containers if c.get("name") == container), None)
    if chosen is None:
        return f"no container {container!r}"
    name = str(chosen.get("image", "")).rpartition("/")[2]
    if "@" in name:
        return f"a digest ({name.partition('@')[2][:19]}…), not a version tag"
    return name.partition(":")[2] or "no tag (latest)"


def _rollout(deployment: Mapping[str, Any]) -> str | None:
    """Why the Deployment is not Available and fully rolled out, or None."""
    generation = int((deployment.get("metadata") or {}).get("generation") or 0)
    status = deployment.get("status") or {}
    if int(status.get("observedGeneration") or 0) < generation:
        return "its controller has not acted on the latest change yet"
    wanted = int((deployment.get("spec") or {}).get("replicas") or status.get("replicas") or 0)
    updated = int(status.get("updatedReplicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    total = int(status.get("replicas") or 0)
    available_now = {c.get("type"): c for c in status.get("conditions") or ()}.get("Available")
    if not available_now or available_now.get("status") != "True":
        why = (available_now or {}).get("message") or "no Available condition"
        return f"not Available ({why})"
    if updated < wanted or available < wanted or total > updated:
        return f"rolling out: {updated} of {wanted} updated, {available} available"
    return None


def _budget(budget: Mapping[str, Any]) -> str:
    spec = budget.get("spec") or {}
    limit = (
        f"maxUnavailable {spec['maxUnavailable']}"
        if "maxUnavailable" in spec
        else f"minAvailable {spec.get('minAvailable')}"
    )
    allowed = (budget.get("status") or {}).get("disruptionsAllowed")
    return limit if allowed is None else f"{limit}, {allowed} disruption(s) allowed"


# --- reading --------------------------------------------------------------------------------


def check_cluster(ctx: Context, cluster: Cluster) -> list[Row]:
    if cluster.name in ctx.outputs.drained:
        return [skip(CLUSTER, cluster.name, "drained: its users are served elsewhere; not checked")]
    version = server_version(ctx, cluster)
    return [ok(CLUSTER, cluster.name, f"API answers: Kubernetes {version} ({cluster.kind})")]


def check_prod(ctx: Context, prod: Prod) -> list[Row]:
    cluster = ctx.outputs.cluster(prod.cluster)
    if cluster is None:
        raise Unchecked(
            f"cluster {prod.cluster} is not in the `clusters` output", f"cluster {prod.cluster}"
        )
    server_version(ctx, cluster)  # an API that does not answer: one line for the cluster
    name = prod.deployment
    deployment = read(ctx, cluster, "deployment", name, prod.namespace)
    budget = read(ctx, cluster, "poddisruptionbudget", name, prod.namespace)
    scaler = read(ctx, cluster, "horizontalpodautoscaler", name, prod.namespace)
    return [judge_prod(prod, deployment, budget, scaler)]


def server_version(ctx: Context, cluster: Cluster) -> str:
    """The API's `/version`, asked once per run: whether the cluster answers at all."""
    return ctx.shared.get(("version", cluster.name), partial(_server_version, ctx, cluster))


def api_client(ctx: Context, cluster: Cluster) -> kube.ApiClient:
    """The cluster's API client from its kubeconfig, built once per run."""
    return ctx.shared.get(
        ("kube", cluster.name), partial(_build, cluster, ctx.outputs.kubeconfigs_missing)
    )


def _build(cluster: Cluster, missing: str | None) -> kube.ApiClient:
    """`missing`: why the outputs hold no kubeconfig at all, said once for every cluster."""
    if missing is not None:
        raise Unchecked(missing, "kubeconfigs")
    access = f"cluster {cluster.name}"
    if not cluster.kubeconfig:
        raise Unchecked(
            f"no kubeconfig for cluster {cluster.name} in the outputs (kubeconfigs."
            f"{cluster.name}): {REDEPLOY}",
            access,
        )
    try:
        document = yaml.safe_load(cluster.kubeconfig)
        configuration = kube.Configuration()
        configuration.retries = 1
        return new_client_from_config_dict(
            document, persist_config=False, client_configuration=configuration
        )
    except yaml.YAMLError as bad:
        mark = getattr(bad, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark is not None else ""
        raise Unchecked(
            f"the kubeconfig of cluster {cluster.name} in the outputs is not YAML{line}", access
        ) from bad
    except (ConfigException, ValueError, TypeError, KeyError, OSError) as bad:
        raise Unchecked(
            f"the kubeconfig of cluster {cluster.name} cannot be used: {_first_line(bad)}", access
        ) from bad


def _server_version(ctx: Context, cluster: Cluster) -> str:
    answer = read(ctx, cluster, "version")
    if answer is None:
        raise Unchecked(
            f"cluster {cluster.name}: the API has no /version", f"cluster {cluster.name}"
        )
    return str(answer.get("gitVersion", "?"))


READS: Mapping[str, tuple[type, str]] = {
    "version": (kube.VersionApi, "get_code"),
    "deployment": (kube.AppsV1Api, "read_namespaced_deployment"),
    "poddisruptionbudget": (kube.PolicyV1Api, "read_namespaced_pod_disruption_budget"),
    "horizontalpodautoscaler": (
        kube.AutoscalingV2Api,
        "read_namespaced_horizontal_pod_autoscaler",
    ),
    "service": (kube.CoreV1Api, "read_namespaced_service"),
}
"""What verify reads from a cluster, through the client's typed APIs."""


def read(ctx: Context, cluster: Cluster, kind: str, *names: str) -> dict[str, Any] | None:
    """One GET of a `kind` in `READS` (`names`: its name and namespace), as plain JSON; None
    when the object is not there (404)."""
    api = api_client(ctx, cluster)
    access = f"cluster {cluster.name}"
    group, method = READS[kind]
    call = getattr(group(api), method)
    try:
        response = ctx.meter.call(
            f"kube GET {kind}", call, *names, _preload_content=False, _request_timeout=ctx.timeout
        )
    except ApiException as refused:
        if refused.status == 404:
            return None
        if refused.status in (401, 403):
            what = "expired or revoked" if refused.status == 401 else "without read access"
            raise Unchecked(
                f"cluster {cluster.name} refused the kubeconfig's credentials ({refused.status} "
                f"{refused.reason}: {what}); renew them and run again",
                access,
            ) from refused
        raise Unchecked(
            f"cluster {cluster.name} answered {refused.status} {refused.reason} to a read of "
            f"{kind} {'/'.join(reversed(names))}",
            access,
        ) from refused
    except (urllib3.exceptions.HTTPError, ssl.SSLError, OSError, ConfigException) as down:
        raise Unchecked(
            f"cluster {cluster.name}'s API at {api.configuration.host} does not answer "
            f"({_first_line(down)})",
            access,
        ) from down
    return dict(json.loads(response.data or b"null") or {})


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0][:200]
