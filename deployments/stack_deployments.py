"""How Pulumi Deployments runs each hybrid-infra stack, decided from plain data.

`plan()` turns this project's config and the hybrid-infra stack files into one `StackPlan` per
stack; `declare()` is the thin shell that registers the Pulumi Cloud resources for them.

- dev and staging follow the trunk: every push that touches the program or their own stack file
  runs `pulumi up`, so the latest code is always running somewhere production-like;
- prod follows its own branch: the only way to change prod is to merge a pull request into that
  branch;
- dev and staging preview the pull requests aimed at the trunk; prod previews none: a pull
  request's code would run with the prod stack's Pulumi token, which decrypts prod's secrets and
  writes its state. A release pull request is previewed from the trunk it comes from
  (docs/delivery.md);
- every run gets the identity its operation needs (`identity.py`): previews and refreshes the
  read-only reader, only the stack's own `up` and drift runs the update identity; cloud
  credentials are short-lived OIDC exchanges, never keys;
- after every successful `up`, a deployment webhook runs `python -m tools.verify` for the stack
  in its verify stack (`hybrid-infra-verify/<stack>`): Deployments has no post-run step, and a
  failed verify fails that deployment, visibly, in Pulumi Cloud;
- a stack with member syncs gets a drift schedule with auto-remediation, the successor of the
  old polling controller;
- the policy pack published from the trunk is required on every stack (a preventative policy
  group): the rules a run is checked against are never the ones in its pull request;
- everything a run installs is pinned and hash-checked: uv from PyPI with `--require-hashes`,
  the AWS CLI and gcloud by `scripts/kube-auth-tools.sh`;
- runs happen on a self-hosted agent pool on-prem: Keystone, Octavia and Magnum stay off the
  internet, because exposed control addresses get attacked.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import pulumi
import pulumi_pulumiservice as ps
from identity import (
    CREDENTIAL_ENVIRONMENT,
    OPERATIONS,
    READER,
    RUN_IDENTITIES_VAR,
    UPDATE,
    VERIFY_OPERATIONS,
    Identity,
    RunIdentities,
    aws_trust_policy,
    gcp_principals,
    subjects,
)
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from model.stackfile import PROJECT, STACK_ORDER

NAMESPACE = "hybrid-infra-deployments"
# The project whose stacks run `python -m tools.verify` after each `up` (deployments/verify/).
VERIFY_PROJECT = f"{PROJECT}-verify"
VERIFY_DIR = "deployments/verify"
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
    **CREDENTIAL_ENVIRONMENT,
}
# uv from PyPI, every file checked against the hashes in the requirements file (pip's
# hash-checking mode), in a venv of its own: the executor's Python may be externally managed.
UV_VENV = "/opt/hybrid-infra-uv"
INSTALL_UV = (
    f"python3 -m venv {UV_VENV} && {UV_VENV}/bin/pip install --quiet --require-hashes "
    f"--no-deps -r deployments/uv-requirements.txt && ln -sf {UV_VENV}/bin/uv /usr/local/bin/uv"
)
SETUP: tuple[str, ...] = (
    INSTALL_UV,
    "uv sync --locked --no-dev",
    # The EKS and GKE kubeconfigs run `aws` and `gke-gcloud-auth-plugin` for tokens.
    "scripts/kube-auth-tools.sh",
    # Last: it reads the OpenStack secret with the `aws` the step before installs.
    "python3 deployments/identity.py",
)
_DURATION = r"^(\d+h(\d+m)?(\d+s)?|\d+m(\d+s)?|\d+s)$"  # 1h, 1h30m, 45m, 900s
_GCP_ID = r"[a-z][a-z0-9-]{4,28}[a-z0-9]"  # a service account id, a project id
_SERVICE_ACCOUNT = rf"^{_GCP_ID}@{_GCP_ID}\.iam\.gserviceaccount\.com$"


class Model(BaseModel):
    model_config = ConfigDict(
        frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True
    )


class AwsOidc(Model):
    """An IAM role that trusts Pulumi Cloud's OIDC issuer for this stack's runs."""

    role_arn: Annotated[str, Field(pattern=r"^arn:aws:iam::\d{12}:role/.+$")]
    duration: Annotated[str, Field(pattern=_DURATION)] = "1h"


class GcpOidc(Model):
    """A workload identity pool provider and the service account it may impersonate."""

    project_number: Annotated[str, Field(pattern=r"^\d{6,20}$")]
    workload_pool_id: Annotated[str, Field(pattern=r"^[a-z0-9-]{4,32}$")]
    provider_id: Annotated[str, Field(pattern=r"^[a-z0-9-]{4,32}$")]
    service_account: Annotated[str, Field(pattern=_SERVICE_ACCOUNT)]
    token_lifetime: Annotated[str, Field(pattern=_DURATION)] = "1h"


class OpenStackSecret(Model):
    """The identity's OpenStack user: a `clouds.yaml` (application credential) in AWS Secrets
    Manager that only this identity's role may read."""

    clouds_yaml_secret: Annotated[
        str, Field(pattern=r"^arn:aws:secretsmanager:[a-z0-9-]+:\d{12}:secret:[\w/+=.@-]+$")
    ]


class IdentityConfig(Model):
    aws: AwsOidc
    gcp: GcpOidc
    openstack: OpenStackSecret


class StackCredentials(IdentityConfig):
    """The update identity (top level) and the read-only one that previews run as."""

    reader: IdentityConfig
    prometheus: tuple[Annotated[str, Field(pattern=r"^https?://[^/\s]+")], ...] = ()
    """The Prometheus servers that see the stack's Prods, which the verify run reads (one per
    cluster that hosts Prods); without one, verify's alerts row is an ERROR and the run fails."""


class ReviewStacks(Model):
    """Per-pull-request copies of `template`, destroyed after `ttl_hours` at the latest."""

    enabled: bool = False
    template: str = "dev"
    ttl_hours: Annotated[int, Field(ge=1, le=168)] = 8


class PolicyPackRef(Model):
    """The CrossGuard pack (policy/) every stack requires; its version is the one in
    policy/PulumiPolicy.yaml, published from the trunk (`pulumi policy publish`)."""

    name: Annotated[str, Field(min_length=1)] = "hybrid-infra"


class DeploymentsConfig(Model):
    organization: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")]
    repository: Annotated[str, Field(pattern=r"^[\w.-]+/[\w.-]+$")]
    repo_dir: str = ""
    trunk_branch: Annotated[str, Field(min_length=1)] = "main"
    prod_branch: Annotated[str, Field(min_length=1)] = "prod"
    drift_schedule: Annotated[str, Field(pattern=r"^\S+( \S+){4}$")] = "*/10 * * * *"
    agent_pool: Annotated[str, Field(min_length=1)] | None = "hybrid-infra-onprem"
    stacks: dict[str, StackCredentials]
    review_stacks: ReviewStacks = ReviewStacks()
    policy_pack: PolicyPackRef = PolicyPackRef()


@dataclass(frozen=True, slots=True)
class VerifyPlan:
    """The verify stack of one hybrid-infra stack: what its webhook-started run does."""

    repo_dir: str
    pre_run_commands: tuple[str, ...]
    environment: Mapping[str, str]


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
    identities: Mapping[str, Identity]
    verify: VerifyPlan


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
    if config is not None:
        problems += _reader_problems(config)
        if config.review_stacks.template not in BRANCH_OF:
            problems.append(f"{NAMESPACE}:reviewStacks.template: unknown stack")
        if config.prod_branch == config.trunk_branch:
            problems.append(
                f"{NAMESPACE}:prodBranch: must differ from trunkBranch, or every push deploys prod"
            )
    if problems or config is None:
        raise DeploymentsConfigError(
            f"{len(problems)} problem(s) in this project's stack configuration; nothing was "
            "declared:\n" + "\n".join(f"  - {p}" for p in problems)
        )
    return config


def _reader_problems(config: DeploymentsConfig) -> list[str]:
    """A reader that shares a role, service account or OpenStack user with the update identity
    would hand previews the update identity's rights."""
    problems = []
    for stack, creds in config.stacks.items():
        shared = {
            "aws.roleArn": creds.aws.role_arn == creds.reader.aws.role_arn,
            "gcp.serviceAccount": creds.gcp.service_account == creds.reader.gcp.service_account,
            "openstack.cloudsYamlSecret": (
                creds.openstack.clouds_yaml_secret == creds.reader.openstack.clouds_yaml_secret
            ),
        }
        problems += [
            f"{NAMESPACE}:stacks.{stack}.reader.{key}: must differ from stacks.{stack}.{key} "
            "(the update identity); previews would run with its rights"
            for key, same in shared.items()
            if same
        ]
    return problems


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


def seconds(duration: str) -> int:
    """`1h30m` → 5400."""
    units = {"h": 3600, "m": 60, "s": 1}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([hms])", duration))


def identity(config: IdentityConfig, session_name: str) -> Identity:
    return Identity(
        aws_role_arn=config.aws.role_arn,
        aws_session_name=session_name,
        aws_duration_seconds=seconds(config.aws.duration),
        gcp_project_number=config.gcp.project_number,
        gcp_workload_pool_id=config.gcp.workload_pool_id,
        gcp_provider_id=config.gcp.provider_id,
        gcp_service_account=config.gcp.service_account,
        gcp_token_lifetime_seconds=seconds(config.gcp.token_lifetime),
        openstack_secret_arn=config.openstack.clouds_yaml_secret,
    )


def identities(stack: str, creds: StackCredentials) -> dict[str, Identity]:
    return {
        UPDATE: identity(creds, f"pulumi-{PROJECT}-{stack}"),
        READER: identity(creds.reader, f"pulumi-{PROJECT}-{stack}-reader"),
    }


def run_environment(
    operations: Mapping[str, str], by_name: Mapping[str, Identity]
) -> dict[str, str]:
    """A run's environment: where the credential files go, and which identity each operation
    gets (read by `python3 deployments/identity.py`)."""
    used = {name: by_name[name] for name in sorted(set(operations.values()))}
    runs = RunIdentities(operations=operations, identities=used)
    return {**ENVIRONMENT, RUN_IDENTITIES_VAR: runs.to_json()}


def verify_command(stack: str, prometheus: Sequence[str] = ()) -> str:
    """Check the live platform, read-only; exit 1 (a check failed) fails the run. The stack
    name resolves in the run's organization (the CLI's local default)."""
    flags = "".join(f" --prometheus {shlex.quote(url)}" for url in prometheus)
    return (
        'pulumi org set-default "$PULUMI_CI_ORGANIZATION" && '
        f"uv run --no-sync python -m tools.verify --stack {shlex.quote(stack)}{flags}"
    )


def plan(
    config: DeploymentsConfig, stack_documents: Mapping[str, Mapping[str, Any]]
) -> tuple[StackPlan, ...]:
    """One plan per stack, in promotion order. `stack_documents` are the parsed stack files."""
    branches = {"trunk": config.trunk_branch, "prod": config.prod_branch}
    root = config.repo_dir.strip("/")
    prefix = f"{root}/" if root else ""
    back = "cd ../.. && "  # from the verify project's directory to the program's
    plans = []
    for stack, branch in BRANCH_OF.items():
        template = config.review_stacks.enabled and stack == config.review_stacks.template
        pre_run = list(SETUP)
        if template:
            pre_run.append(review_stack_ttl_command(stack, config.review_stacks.ttl_hours))
        by_name = identities(stack, config.stacks[stack])
        plans.append(
            StackPlan(
                stack=stack,
                branch=branches[branch],
                deploy_on_push=True,
                # A stack on its own branch is prod: no pull request's code runs with its token.
                preview_pull_requests=branch == "trunk",
                pull_request_template=template,
                paths=tuple(f"{prefix}{p}" for p in (*PROGRAM_PATHS, f"Pulumi.{stack}.yaml")),
                pre_run_commands=tuple(pre_run),
                environment=run_environment(OPERATIONS, by_name),
                drift_cron=(
                    config.drift_schedule
                    if has_sync_resources(stack_documents.get(stack, {}))
                    else None
                ),
                identities=by_name,
                verify=VerifyPlan(
                    repo_dir=f"{prefix}{VERIFY_DIR}",
                    pre_run_commands=tuple(
                        back + c
                        for c in (*SETUP, verify_command(stack, config.stacks[stack].prometheus))
                    ),
                    environment=run_environment(VERIFY_OPERATIONS, by_name),
                ),
            )
        )
    return tuple(plans)


def trust(org: str, p: StackPlan) -> dict[str, Any]:
    """What each of the stack's identities must trust, in the form each cloud takes it: the AWS
    role's trust policy, the principals to grant `roles/iam.workloadIdentityUser` on the
    service account."""
    trusted = subjects(org, p.stack, {PROJECT: OPERATIONS, VERIFY_PROJECT: VERIFY_OPERATIONS})
    return {
        name: {
            "awsRoleArn": ident.aws_role_arn,
            "awsTrustPolicy": aws_trust_policy(ident.aws_account, org, trusted[name]),
            "gcpServiceAccount": ident.gcp_service_account,
            "gcpPrincipals": gcp_principals(ident, trusted[name]),
            "openstackCloudsYamlSecret": ident.openstack_secret_arn,
        }
        for name, ident in p.identities.items()
    }


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


def _settings(
    name: str,
    config: DeploymentsConfig,
    *,
    project: str,
    stack: str,
    branch: str,
    repo_dir: str,
    vcs: ps.DeploymentSettingsVcsArgs,
    pre_run: tuple[str, ...],
    environment: Mapping[str, str],
    pool: ps.AgentPool | None,
    opts: pulumi.ResourceOptions | None = None,
) -> ps.DeploymentSettings:
    return ps.DeploymentSettings(
        name,
        organization=config.organization,
        project=project,
        stack=stack,
        agent_pool_id=pool.agent_pool_id if pool else None,
        source_context=ps.DeploymentSettingsSourceContextArgs(
            git=ps.DeploymentSettingsGitSourceArgs(branch=branch, repo_dir=repo_dir or None)
        ),
        vcs=vcs,
        operation_context=ps.DeploymentSettingsOperationContextArgs(
            pre_run_commands=list(pre_run),
            environment_variables=dict(environment),
            options=ps.OperationContextOptionsArgs(
                skip_install_dependencies=True, skip_intermediate_deployments=True
            ),
        ),
        opts=opts,
    )


def _verify(
    config: DeploymentsConfig, p: StackPlan, pool: ps.AgentPool | None
) -> ps.DeploymentSettings:
    """The stack's verify stack, and the webhook that deploys it after each successful `up`."""
    stack = ps.Stack(
        f"{p.stack}-verify-stack",
        organization_name=config.organization,
        project_name=VERIFY_PROJECT,
        stack_name=p.stack,
    )
    settings = _settings(
        f"{p.stack}-verify",
        config,
        project=VERIFY_PROJECT,
        stack=p.stack,
        branch=p.branch,
        repo_dir=p.verify.repo_dir,
        # Started by the webhook only: no push, no pull request runs it.
        vcs=ps.DeploymentSettingsVcsArgs(
            provider="github",
            repository=config.repository,
            deploy_commits=False,
            preview_pull_requests=False,
        ),
        pre_run=p.verify.pre_run_commands,
        environment=p.verify.environment,
        pool=pool,
        opts=pulumi.ResourceOptions(depends_on=[stack]),
    )
    ps.Webhook(
        f"{p.stack}-verify-after-up",
        organization_name=config.organization,
        project_name=PROJECT,
        stack_name=p.stack,
        display_name=f"verify {p.stack} after each up",
        active=True,
        format=ps.WebhookFormat.PULUMI_DEPLOYMENTS,
        payload_url=f"{VERIFY_PROJECT}/{p.stack}",
        filters=[ps.WebhookFilters.UPDATE_SUCCEEDED],
        opts=pulumi.ResourceOptions(depends_on=[settings]),
    )
    return settings


def declare(
    config: DeploymentsConfig, plans: tuple[StackPlan, ...], policy_version: str
) -> dict[str, Any]:
    """Register the Pulumi Cloud resources for `plans`; returns what to export.
    `policy_version` is the pack's version on the trunk (policy/PulumiPolicy.yaml)."""
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
    trusts: dict[str, Any] = {}
    for p in plans:
        settings = _settings(
            p.stack,
            config,
            project=PROJECT,
            stack=p.stack,
            branch=p.branch,
            repo_dir=config.repo_dir,
            vcs=ps.DeploymentSettingsVcsArgs(
                provider="github",
                repository=config.repository,
                deploy_commits=p.deploy_on_push,
                preview_pull_requests=p.preview_pull_requests,
                pull_request_template=p.pull_request_template,
                paths=list(p.paths),
            ),
            pre_run=p.pre_run_commands,
            environment=p.environment,
            pool=pool,
        )
        _verify(config, p, pool)
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
            "previewPullRequests": p.preview_pull_requests,
            "reviewStackTemplate": p.pull_request_template,
            "driftSchedule": p.drift_cron,
            "verifyStack": f"{VERIFY_PROJECT}/{p.stack}",
        }
        trusts[p.stack] = trust(config.organization, p)
    ps.PolicyGroup(
        "policies",
        name=f"{PROJECT}-stacks",
        organization_name=config.organization,
        entity_type="stacks",
        # Audit mode only reports; preventative blocks a run that breaks a mandatory rule.
        mode="preventative",
        policy_packs=[
            ps.PolicyGroupPolicyPackReferenceInputArgs(
                name=config.policy_pack.name, version_tag=policy_version
            )
        ],
        stacks=[
            ps.PolicyGroupStackReferenceArgs(name=p.stack, routing_project=PROJECT) for p in plans
        ],
    )
    result: dict[str, Any] = {"stacks": exports, "trust": trusts}
    if pool is not None:
        result["agentPoolToken"] = pulumi.Output.secret(pool.token_value)
    return result
