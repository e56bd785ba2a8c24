"""The identity a Pulumi Deployments run gets, chosen by its operation.

Each hybrid-infra stack has two identities in every cloud: the *update* identity, which may
change the clouds, and the read-only *reader*. A run's operation picks one (`OPERATIONS`):
only the operations that run the stack's own branch (an `up`, drift detection and its
remediation) get the update identity; a preview, the one operation a pull request starts, gets
the reader. The clouds enforce the split, not this file: Pulumi Cloud signs each run's OIDC
token with a subject that names the operation

    pulumi:deploy:org:<org>:project:<project>:stack:<stack>:operation:<operation>:scope:write

(https://www.pulumi.com/docs/deployments/guides/oidc/#custom-claims), and each role trusts
exactly the subjects of the operations mapped to it (`aws_trust_policy`, `gcp_principals`).
Code in a pull request can read the token; it cannot make it name another operation.

Run as a Deployments pre-run step (`python3 deployments/identity.py`), this module writes the
chosen identity's credential files: an AWS config profile and a Google external-account file,
both exchanging the run's OIDC token for short-lived credentials, and the OpenStack
`clouds.yaml` the identity's AWS role may read from Secrets Manager. Standard library only: the
step runs before any dependency is installed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

UPDATE = "update"
READER = "reader"
IDENTITY_NAMES = (UPDATE, READER)

# Operation → identity for the hybrid-infra stacks; Deployments names the operation in
# PULUMI_CI_OPERATION (update, preview, destroy, refresh, detect-drift, remediate-drift).
# Drift detection holds the update identity because auto-remediation may follow in the same
# run; both run on a schedule from the stack's own branch, never from a pull request. `destroy`
# has no identity: Deployments never destroys these stacks.
OPERATIONS: Mapping[str, str] = {
    "update": UPDATE,
    "detect-drift": UPDATE,
    "remediate-drift": UPDATE,
    "preview": READER,
    "refresh": READER,
}
# The verify stacks' only operation is the `update` a deployment webhook starts after each
# successful `up`; it reads the platform, so it gets the reader.
VERIFY_OPERATIONS: Mapping[str, str] = {"update": READER}

ISSUER = "api.pulumi.com/oidc"
TOKEN_FILE = "/mnt/pulumi/pulumi.oidc"  # where Deployments also leaves the run's OIDC token

# Fixed paths, named in the Deployments settings' environment, so the program, the providers
# and the kubeconfig exec plugins all find the files the identity step writes.
CREDENTIALS_DIR = "/tmp/hybrid-infra-credentials"
AWS_CONFIG_FILE = f"{CREDENTIALS_DIR}/aws-config"
GCP_CREDENTIALS_FILE = f"{CREDENTIALS_DIR}/gcp-credentials.json"
CLOUDS_YAML = f"{CREDENTIALS_DIR}/clouds.yaml"
RUN_IDENTITIES_VAR = "HYBRID_INFRA_RUN_IDENTITIES"
CREDENTIAL_ENVIRONMENT: Mapping[str, str] = {
    "HYBRID_INFRA_CREDENTIALS": CREDENTIALS_DIR,
    "AWS_CONFIG_FILE": AWS_CONFIG_FILE,
    "AWS_SDK_LOAD_CONFIG": "1",
    "GOOGLE_APPLICATION_CREDENTIALS": GCP_CREDENTIALS_FILE,
    "CLOUDSDK_AUTH_CREDENTIAL_FILE_OVERRIDE": GCP_CREDENTIALS_FILE,  # gcloud, for the GKE plugin
    "OS_CLIENT_CONFIG_FILE": CLOUDS_YAML,
}


class IdentityError(Exception):
    """This run cannot be given an identity; the message says what to do."""


@dataclass(frozen=True, slots=True)
class Identity:
    """One identity's coordinates in the three clouds (validated by the Deployments config)."""

    aws_role_arn: str
    aws_session_name: str
    aws_duration_seconds: int
    gcp_project_number: str
    gcp_workload_pool_id: str
    gcp_provider_id: str
    gcp_service_account: str
    gcp_token_lifetime_seconds: int
    openstack_secret_arn: str
    """A Secrets Manager secret holding the `clouds.yaml` of this identity's OpenStack user."""

    @property
    def aws_account(self) -> str:
        return self.aws_role_arn.split(":")[4]

    @property
    def gcp_pool(self) -> str:
        return (
            f"projects/{self.gcp_project_number}/locations/global/"
            f"workloadIdentityPools/{self.gcp_workload_pool_id}"
        )


@dataclass(frozen=True, slots=True)
class RunIdentities:
    """What one stack's Deployments settings hand the identity step: its identities by name and
    which operation gets which."""

    operations: Mapping[str, str]
    identities: Mapping[str, Identity]

    def to_json(self) -> str:
        return json.dumps(
            {
                "operations": dict(self.operations),
                "identities": {n: asdict(i) for n, i in self.identities.items()},
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> RunIdentities:
        raw = json.loads(text)
        return cls(
            operations=dict(raw["operations"]),
            identities={n: Identity(**i) for n, i in raw["identities"].items()},
        )

    def for_operation(self, operation: str) -> tuple[str, Identity]:
        name = self.operations.get(operation)
        if name is None:
            runs = ", ".join(sorted(self.operations))
            raise IdentityError(
                f"Deployments runs only {runs} on this stack, not {operation!r}: no identity "
                "is given to it. Run it from a workstation with an operator's credentials."
            )
        return name, self.identities[name]


def subject(org: str, project: str, stack: str, operation: str) -> str:
    """The `sub` claim of a Deployments OIDC token for this run."""
    run = f"project:{project}:stack:{stack}:operation:{operation}"
    return f"pulumi:deploy:org:{org}:{run}:scope:write"


def subjects(org: str, stack: str, runs: Mapping[str, Mapping[str, str]]) -> dict[str, list[str]]:
    """Per identity name, the token subjects it must trust: `runs` maps each Pulumi project
    running this stack to its operation → identity table."""
    found: dict[str, list[str]] = {name: [] for name in IDENTITY_NAMES}
    for project, operations in runs.items():
        for operation, name in operations.items():
            found[name].append(subject(org, project, stack, operation))
    return {name: sorted(subs) for name, subs in found.items()}


def aws_trust_policy(account: str, org: str, trusted: Sequence[str]) -> dict[str, object]:
    """The role's trust policy: Pulumi Cloud's OIDC provider in `account`, for `org`'s tokens
    whose subject is exactly one of `trusted` (StringEquals on a list matches any one)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": f"arn:aws:iam::{account}:oidc-provider/{ISSUER}"},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {f"{ISSUER}:aud": org, f"{ISSUER}:sub": sorted(trusted)}
                },
            }
        ],
    }


def gcp_principals(identity: Identity, trusted: Sequence[str]) -> list[str]:
    """The members to grant `roles/iam.workloadIdentityUser` on the identity's service account:
    one principal per trusted subject (the provider maps `google.subject=assertion.sub`)."""
    return [f"principal://iam.googleapis.com/{identity.gcp_pool}/subject/{s}" for s in trusted]


def aws_config(identity: Identity, token_file: str) -> str:
    """A default profile that assumes the role with the run's token; the AWS SDKs and CLI call
    AssumeRoleWithWebIdentity themselves and renew the session when it expires."""
    return (
        "[default]\n"
        f"role_arn = {identity.aws_role_arn}\n"
        f"web_identity_token_file = {token_file}\n"
        f"role_session_name = {identity.aws_session_name}\n"
        f"duration_seconds = {identity.aws_duration_seconds}\n"
    )


def gcp_credentials(identity: Identity, token_file: str) -> dict[str, object]:
    """An external-account credential file (https://google.aip.dev/auth/4117): Google's STS
    exchanges the run's token, then impersonates the identity's service account."""
    provider = f"{identity.gcp_pool}/providers/{identity.gcp_provider_id}"
    return {
        "type": "external_account",
        "audience": f"//iam.googleapis.com/{provider}",
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": "https://sts.googleapis.com/v1/token",
        "credential_source": {"file": token_file},
        "service_account_impersonation_url": (
            "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/"
            f"{identity.gcp_service_account}:generateAccessToken"
        ),
        "service_account_impersonation": {
            "token_lifetime_seconds": identity.gcp_token_lifetime_seconds
        },
    }


def _write(path: str, text: str) -> None:
    target = Path(path)
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    target.touch(mode=0o600)
    target.write_text(text)


def _token(env: Mapping[str, str]) -> str:
    token = env.get("PULUMI_OIDC_TOKEN", "").strip()
    if not token and Path(TOKEN_FILE).is_file():
        token = Path(TOKEN_FILE).read_text().strip()
    if not token:
        raise IdentityError(
            "this run has no Pulumi OIDC token (PULUMI_OIDC_TOKEN is empty and "
            f"{TOKEN_FILE} is missing): run it through Pulumi Deployments"
        )
    return token


def _clouds_yaml(identity: Identity, env: Mapping[str, str]) -> str:
    region = identity.openstack_secret_arn.split(":")[3]
    command = [
        "aws",
        "secretsmanager",
        "get-secret-value",
        "--secret-id",
        identity.openstack_secret_arn,
        "--region",
        region,
        "--query",
        "SecretString",
        "--output",
        "text",
    ]
    done = subprocess.run(command, env=dict(env), capture_output=True, text=True)
    if done.returncode != 0:
        raise IdentityError(
            f"cannot read the OpenStack clouds.yaml from {identity.openstack_secret_arn} as "
            f"{identity.aws_role_arn}: {done.stderr.strip()}. The role's trust must accept this "
            "run's subject, and its policy must allow secretsmanager:GetSecretValue on it."
        )
    return done.stdout


def _setting(env: Mapping[str, str], name: str) -> str:
    value = env.get(name)
    if not value:
        raise IdentityError(
            f"{name} is not set: the Deployments settings set it; apply them with "
            "`pulumi up --stack main --cwd deployments`"
        )
    return value


def main(env: Mapping[str, str]) -> int:
    """Write the credential files of the identity this run's operation gets."""
    try:
        run = RunIdentities.from_json(_setting(env, RUN_IDENTITIES_VAR))
        operation = _setting(env, "PULUMI_CI_OPERATION")
        name, identity = run.for_operation(operation)
        token_file = f"{_setting(env, 'HYBRID_INFRA_CREDENTIALS')}/oidc-token"
        _write(token_file, _token(env))
        _write(_setting(env, "AWS_CONFIG_FILE"), aws_config(identity, token_file))
        gcp = json.dumps(gcp_credentials(identity, token_file), indent=2)
        _write(_setting(env, "GOOGLE_APPLICATION_CREDENTIALS"), gcp)
        _write(_setting(env, "OS_CLIENT_CONFIG_FILE"), _clouds_yaml(identity, env))
    except IdentityError as error:
        print(f"hybrid-infra identity: {error}", file=sys.stderr)
        return 1
    print(
        f"hybrid-infra identity: this {operation} runs as the {name} identity "
        f"({identity.aws_role_arn}, {identity.gcp_service_account})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(os.environ))
