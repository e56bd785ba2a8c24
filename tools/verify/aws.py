"""The AWS clients verify reads with (the boto3 default chain, as the program and the sync use
it, `AWS_ENDPOINT_URL` included), and what a failed AWS call means, in one line.

Fewer retries than the sync's clients: a read that fails three times is reported, and the
other checks are not held up by a minute of backoff."""

from __future__ import annotations

from functools import partial
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from providers.octavia_nlb_sync import elbv2 as elbv2_shell
from tools.verify.context import Context
from tools.verify.runner import Unchecked

ACCESS = "aws"
ERRORS = (ClientError, BotoCoreError)


READS = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=20)


def route53(ctx: Context) -> Any:
    """Route53 is global; the region only picks the endpoint's partition."""
    return ctx.shared.get("route53", partial(_client, "route53", ctx.outputs.aws_region))


def elbv2(ctx: Context) -> Any:
    return ctx.shared.get("elbv2", partial(_client, "elbv2", ctx.outputs.aws_region))


def _client(service: str, region: str | None) -> Any:
    return boto3.session.Session(region_name=region or None).client(service, config=READS)


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
