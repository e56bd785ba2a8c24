"""The AWS clients verify reads with (the boto3 default chain, as the program and the sync use
it), and what a failed AWS call means, in one line."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from providers.octavia_nlb_sync import elbv2 as elbv2_shell
from tools.verify.context import Context
from tools.verify.runner import Unchecked

ACCESS = "aws"
ERRORS = (ClientError, BotoCoreError)


def route53(ctx: Context) -> Any:
    """Route53 is global; the region only picks the endpoint's partition."""

    def build() -> Any:
        session = boto3.session.Session(region_name=ctx.outputs.aws_region or None)
        return session.client("route53", config=elbv2_shell.RETRIES)

    return ctx.shared.get("route53", build)


def elbv2(ctx: Context) -> Any:
    """The sync's own client (`providers.octavia_nlb_sync.elbv2`): the same chain and retries."""
    return ctx.shared.get("elbv2", lambda: elbv2_shell.client(ctx.outputs.aws_region))


def unchecked(failure: ClientError | BotoCoreError, doing: str) -> Unchecked:
    """`doing` says which call, for an answer that concerns one subject only."""
    if isinstance(failure, NoCredentialsError):
        return Unchecked(
            "no AWS credentials found: sign in (aws sso login, AWS_PROFILE or AWS_* keys, OIDC "
            "in Deployments) and run again",
            ACCESS,
        )
    if isinstance(failure, ClientError):
        code = failure.response.get("Error", {}).get("Code", "")
        if code in elbv2_shell.AUTH_ERRORS or code in ("AccessDenied", "AccessDeniedException"):
            return Unchecked(
                f"AWS refused the credentials ({code}): renew them (aws sso login, new AWS_* "
                "keys) or grant the read, and run again",
                ACCESS,
            )
        message = failure.response.get("Error", {}).get("Message", "")
        return Unchecked(f"{doing}: AWS answered {code}: {message}".rstrip(": "))
    return Unchecked(f"AWS did not answer ({type(failure).__name__}): {failure}", ACCESS)
