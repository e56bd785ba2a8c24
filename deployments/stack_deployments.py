"""How Pulumi Deployments runs each hybrid-infra stack, decided from plain data.

`plan()` turns this project's config and the hybrid-infra stack files into one `StackPlan` per
stack; `declare()` is the thin shell that registers the Pulumi Cloud resources for them.

- dev and staging follow the trunk: every push that touches the program or their own stack file
  runs `pulumi up`, so the latest code is always running somewhere production-like;
- prod follows its own branch: the only way to change prod is to merge a pull request into that
  branch, whose preview is the review of what prod will do;
- every stack previews pull requests aimed at its branch;
- a stack with member syncs gets a drift schedule with auto-remediation, the successor of the
  old polling controller;
- cloud credentials are short-lived OIDC tokens (AWS role, GCP workload identity), never keys;
- runs happen on a self-hosted agent pool on-prem: Keystone, Octavia and Magnum stay off the
  internet, because exposed control addresses get attacked.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import pulumi
import pulumi_pulumiservice as ps
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from model.stackfile import PROJECT, STACK_ORDER

NAMESPACE = "hybrid-infra-deployments"
# Which branch each stack deploys from, for every stack of the program in promotion order: prod
# from its own branch (merged release pull requests only), every other stack from the trunk.
BRANCH_OF: Mapping[str, str] = {s: "prod" if s == "prod" else "trunk" for s in STACK_ORDER}
# What the program is made of: a change anywhere else (docs, tests, policy, other stacks'
# files) does not redeploy a stack.
PROGRAM_PATHS: tuple[str, ...] = (
    "__main__.py",
    "Pulumi.yaml",
    "components/**",
    "model/**",
    "providers/**",
    "pyproject.toml",
    "uv.lock",
)
ENVIRONMENT: Mapping[str, str] = {
    # Pulumi syncs the uv environment before each run; keep test-only packages out of it, and
    # never let a run rewrite the lock.
    "UV_NO_DEV": "1",
    "UV_LOCKED": "1",
}


class Model(BaseModel):
    model_config = ConfigDict(
        frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True
    )


class AwsOidc(Model):
    """An IAM role that trusts Pulumi Cloud's OIDC issuer for this one stack."""

    role_arn: Annotated[str, Field(pattern=r"^arn:aws:iam::\d{12}:role/.+$")]
    duration: Annotated[str, Field(pattern=r"^(\d+h)?(\d+m)?(\d+s)?$")] = "1h"


class GcpOidc(Model):
    """A workload identity pool provider and the service account it may impersonate."""

    project_number: Annotated[str, Field(pattern=r"^\d{6,20}$")]
    workload_pool_id: Annotated[str, Field(min_length=1)]
    provider_id: Annotated[str, Field(min_length=1)]
    service_account: Annotated[str, Field(pattern=r"^[^@]+@[^@]+\.iam\.gserviceaccount\.com$")]
    token_lifetime: Annotated[str, Field(pattern=r"^(\d+h)?(\d+m)?(\d+s)?$")] = "1h"


class StackCredentials(Model):
    aws: AwsOidc
    gcp: GcpOidc


class ReviewStacks(Model):
    """Per-pull-request copies of `template`, destroyed after `ttl_hours` at the latest."""

    enabled: bool = False
    template: str = "dev"
    ttl_hours: Annotated[int, Field(ge=1, le=168)] = 8


class PolicyPackRef(Model):
    """A published CrossGuard pack (`pulumi policy publish` in policy/) to enforce."""

    name: Annotated[str, Field(min_length=1)] = "hybrid-infra"
    version_tag: Annotated[str, Field(min_length=1)]


class DeploymentsConfig(Model):
    organization: Annotated[str, Field(min_length=1)]
    repository: Annotated[str, Field(pattern=r"^[\w.-]+/[\w.-]+$")]
    repo_dir: str = ""
    trunk_branch: Annotated[str, Field(min_length=1)] = "main"
    prod_branch: Annotated[str, Field(min_length=1)] = "prod"
    drift_schedule: Annotated[str, Field(pattern=r"^\S+( \S+){4}$")] = "*/10 * * * *"
    uv_version: Annotated[str, Field(pattern=r"^\d+\.\d+\.\d+$")] = "0.13.9"
    agent_pool: Annotated[str, Field(min_length=1)] | None = "hybrid-infra-onprem"
    stacks: dict[str, StackCredentials]
    review_stacks: ReviewStacks = ReviewStacks()
    policy_pack: PolicyPackRef | None = None


@dataclass(frozen=True, slots=True)
class StackPlan:
    """Everything Pulumi Deployments needs to know about one stack."""

    stack: str
    branch: str
    deploy_on_push: bool
    preview_pull_requests: bool
    pull_request_template: bool
    paths: tuple[str, ...]
    pre_run_commands: tuple[str, ...]
    environment: Mapping[str, str]
    drift_cron: str | None
    credentials: StackCredentials


class DeploymentsConfigError(pulumi.RunError):
    """This project's stack file is wrong; the message lists every problem with its key."""


def parse(raw: Mapping[str, Any]) -> DeploymentsConfig:
    """Validate the whole config at once, so one run shows every problem with its key."""
    problems: list[str] = []
    config = None
    try:
        config = DeploymentsConfig.model_validate(raw)
    except ValidationError as error:
        problems += [
            f"{NAMESPACE}:{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
        ]
    stacks = raw.get("stacks")
    if isinstance(stacks, Mapping):
        problems += [
            f"{NAMESPACE}:stacks.{s}: required (the stack's OIDC credentials)"
            for s in BRANCH_OF
            if s not in stacks
        ]
        problems += [f"{NAMESPACE}:stacks.{s}: unknown stack" for s in stacks if s not in BRANCH_OF]
    if config is not None and config.review_stacks.template not in BRANCH_OF:
        problems.append(f"{NAMESPACE}:reviewStacks.template: unknown stack")
    if config is not None and config.prod_branch == config.trunk_branch:
        problems.append(
            f"{NAMESPACE}:prodBranch: must differ from trunkBranch, or every push deploys prod"
        )
    if problems or config is None:
        raise DeploymentsConfigError(
            f"{len(problems)} problem(s) in this project's stack configuration; nothing was "
            "declared:\n" + "\n".join(f"  - {p}" for p in problems)
        )
    return config


def load() -> DeploymentsConfig:
    """Read this project's config keys (structured ones arrive as JSON text), then `parse`."""
    config = pulumi.Config(NAMESPACE)
    raw: dict[str, Any] = {}
    for name, field in DeploymentsConfig.model_fields.items():
        key = field.alias or name
        value = config.get(key)
        if value is None:
            continue
        try:
            raw[key] = json.loads(value)
        except ValueError:
            raw[key] = value
    return parse(raw)


def has_sync_resources(stack_document: Mapping[str, Any]) -> bool:
    """A stack with load balancers registers an Octavia → NLB member sync for each; one with
    discovery may at any time (a service team tags an LB), and the drift run is what picks
    the new twin up between deploys."""
    config = stack_document.get("config") or {}
    return bool(config.get(f"{PROJECT}:loadBalancers") or config.get(f"{PROJECT}:discovery"))


def plan(
    config: DeploymentsConfig, stack_documents: Mapping[str, Mapping[str, Any]]
) -> tuple[StackPlan, ...]:
    """One plan per stack, in promotion order. `stack_documents` are the parsed stack files."""
    branches = {"trunk": config.trunk_branch, "prod": config.prod_branch}
    prefix = f"{config.repo_dir.strip('/')}/" if config.repo_dir.strip("/") else ""
    plans = []
    for stack, branch in BRANCH_OF.items():
        template = config.review_stacks.enabled and stack == config.review_stacks.template
        pre_run = [
            # The installer, not pip: the executor's Python may be externally managed (PEP 668).
            f"curl -LsSf https://astral.sh/uv/{config.uv_version}/install.sh "
            "| env UV_INSTALL_DIR=/usr/local/bin UV_NO_MODIFY_PATH=1 sh",
            "uv sync --locked --no-dev",
            # The EKS and GKE kubeconfigs run `aws` and `gke-gcloud-auth-plugin` for tokens.
            "scripts/kube-auth-tools.sh",
        ]
        if template:
            pre_run.append(review_stack_ttl_command(stack, config.review_stacks.ttl_hours))
        plans.append(
            StackPlan(
                stack=stack,
                branch=branches[branch],
                deploy_on_push=True,
                preview_pull_requests=True,
                pull_request_template=template,
                paths=tuple(f"{prefix}{p}" for p in (*PROGRAM_PATHS, f"Pulumi.{stack}.yaml")),
                pre_run_commands=tuple(pre_run),
                environment=dict(ENVIRONMENT),
                drift_cron=(
                    config.drift_schedule
                    if has_sync_resources(stack_documents.get(stack, {}))
                    else None
                ),
                credentials=config.stacks[stack],
            )
        )
    return tuple(plans)


def review_stack_ttl_command(template: str, hours: int) -> str:
    """A pre-run step that gives a review stack a time-to-live on its updates.

    Review stacks copy the template's settings, so this runs in them; the template stack itself
    is skipped. Pulumi Cloud destroys a review stack when its pull request closes; the TTL also
    catches pull requests left open. The request uses the run's own stack-scoped
    `PULUMI_ACCESS_TOKEN`. Once the stack has its TTL a later request may be refused; that is
    ignored and the first TTL stands.
    """
    url = (
        "https://api.pulumi.com/api/stacks/"
        "$PULUMI_CI_ORGANIZATION/$PULUMI_CI_PROJECT/$PULUMI_CI_STACK/deployments/ttl/schedules"
    )
    return (
        f'if [ "$PULUMI_CI_STACK" != {shlex.quote(template)} ] '
        '&& [ "$PULUMI_CI_OPERATION" = update ]; then '
        f"ttl=$(date -u -d '+{hours} hours' +%Y-%m-%dT%H:%M:%SZ); "
        "curl -fsS -X POST -H 'Content-Type: application/json' "
        "-H 'Accept: application/vnd.pulumi+8' "
        '-H "Authorization: token $PULUMI_ACCESS_TOKEN" '
        '--data "{\\"timestamp\\":\\"$ttl\\",\\"deleteAfterDestroy\\":true}" '
        f"\"{url}\" || echo 'review stack TTL already set'; fi"
    )


def declare(config: DeploymentsConfig, plans: tuple[StackPlan, ...]) -> dict[str, Any]:
    """Register the Pulumi Cloud resources for `plans`; returns what to export."""
    pool = (
        ps.AgentPool(
            "agents",
            organization_name=config.organization,
            name=config.agent_pool,
            description="Self-hosted runners next to the private cloud: runs for hybrid-infra "
            "reach Keystone, Octavia and Magnum without exposing them",
        )
        if config.agent_pool
        else None
    )
    exports: dict[str, Any] = {}
    for p in plans:
        settings = ps.DeploymentSettings(
            p.stack,
            organization=config.organization,
            project=PROJECT,
            stack=p.stack,
            agent_pool_id=pool.agent_pool_id if pool else None,
            source_context=ps.DeploymentSettingsSourceContextArgs(
                git=ps.DeploymentSettingsGitSourceArgs(
                    branch=p.branch, repo_dir=config.repo_dir or None
                )
            ),
            vcs=ps.DeploymentSettingsVcsArgs(
                provider="github",
                repository=config.repository,
                deploy_commits=p.deploy_on_push,
                preview_pull_requests=p.preview_pull_requests,
                pull_request_template=p.pull_request_template,
                paths=list(p.paths),
            ),
            operation_context=ps.DeploymentSettingsOperationContextArgs(
                pre_run_commands=list(p.pre_run_commands),
                environment_variables=dict(p.environment),
                options=ps.OperationContextOptionsArgs(
                    skip_install_dependencies=True, skip_intermediate_deployments=True
                ),
                oidc=ps.OperationContextOIDCArgs(
                    aws=ps.AWSOIDCConfigurationArgs(
                        role_arn=p.credentials.aws.role_arn,
                        session_name=f"pulumi-{PROJECT}-{p.stack}",
                        duration=p.credentials.aws.duration,
                    ),
                    gcp=ps.GCPOIDCConfigurationArgs(
                        project_id=p.credentials.gcp.project_number,
                        workload_pool_id=p.credentials.gcp.workload_pool_id,
                        provider_id=p.credentials.gcp.provider_id,
                        service_account=p.credentials.gcp.service_account,
                        token_lifetime=p.credentials.gcp.token_lifetime,
                    ),
                ),
            ),
        )
        if p.drift_cron:
            ps.DriftSchedule(
                f"{p.stack}-drift",
                organization=config.organization,
                project=PROJECT,
                stack=p.stack,
                schedule_cron=p.drift_cron,
                auto_remediate=True,
                opts=pulumi.ResourceOptions(depends_on=[settings]),
            )
        exports[p.stack] = {
            "branch": p.branch,
            "deployOnPush": p.deploy_on_push,
            "reviewStackTemplate": p.pull_request_template,
            "driftSchedule": p.drift_cron,
        }
    if config.policy_pack is not None:
        ps.PolicyGroup(
            "policies",
            name=f"{PROJECT}-stacks",
            organization_name=config.organization,
            policy_packs=[
                ps.PolicyGroupPolicyPackReferenceInputArgs(
                    name=config.policy_pack.name, version_tag=config.policy_pack.version_tag
                )
            ],
            stacks=[
                ps.PolicyGroupStackReferenceArgs(name=p.stack, routing_project=PROJECT)
                for p in plans
            ],
        )
    result: dict[str, Any] = {"stacks": exports}
    if pool is not None:
        result["agentPoolToken"] = pulumi.Output.secret(pool.token_value)
    return result
