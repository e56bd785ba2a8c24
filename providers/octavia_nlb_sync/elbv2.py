"""Reads and writes of NLB target groups through boto3; nothing else.

Throttling is botocore's job: the client uses adaptive retry mode, which retries throttled
calls with backoff and rate-limits itself client-side.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Sequence
from ipaddress import IPv4Network
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from providers.octavia_nlb_sync.planner import (
    Target,
    chunks,
    needs_zone_all,
    split_target,
    target_key,
)

RETRIES = Config(retries={"mode": "adaptive", "max_attempts": 10})


class ElbUnavailable(Exception):
    """The NLB side could not be read or written."""


AUTH_ERRORS = frozenset(
    {
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "AuthFailure",
        "RequestExpired",
    }
)
_ENV_KEYS = ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_DEFAULT_REGION")
"""The environment a client is built from: a change (another endpoint or key) is another client."""
_CLIENTS: dict[tuple[str | None, ...], Any] = {}
_LOCK = threading.Lock()


def client(region: str | None = None) -> Any:
    """The boto3 default chain (`AWS_*`, including `AWS_ENDPOINT_URL`), with adaptive retries.

    One client per region and environment for the life of the provider host, which serves every
    sync of an `up` (concurrently): building one costs ~100 ms of model loading, and boto3
    clients are thread-safe. `forget_clients` drops them when credentials expire.
    """
    key = (region, *(os.environ.get(k) for k in _ENV_KEYS))
    with _LOCK:
        found = _CLIENTS.get(key)
        if found is None:
            session = boto3.session.Session(region_name=region or None)
            found = _CLIENTS[key] = session.client("elbv2", config=RETRIES)
        return found


def forget_clients() -> None:
    with _LOCK:
        _CLIENTS.clear()


def is_auth_error(error: BaseException) -> bool:
    """Expired or refused credentials: a new client (fresh credentials) may succeed."""
    cause = error.__cause__ if isinstance(error, ElbUnavailable) else error
    return (
        isinstance(cause, ClientError)
        and cause.response.get("Error", {}).get("Code") in AUTH_ERRORS
    )


def is_target_group_not_found(error: BaseException) -> bool:
    """A target group that is gone has nothing left to deregister: cleanup stays idempotent."""
    return (
        isinstance(error, ClientError)
        and error.response.get("Error", {}).get("Code") == "TargetGroupNotFound"
    )


def list_targets(elbv2: Any, target_group_arn: str) -> tuple[Target, ...]:
    """The group's targets as `ip:port`, each with its health state (draining ones included:
    what they mean is the planner's call)."""
    try:
        described = elbv2.describe_target_health(TargetGroupArn=target_group_arn)
    except (ClientError, BotoCoreError) as error:
        raise ElbUnavailable(
            f"reading targets of {target_group_arn} failed: {error}. Nothing was changed."
        ) from error
    return tuple(
        Target(
            target_key(d["Target"]["Id"], int(d["Target"]["Port"])),
            d.get("TargetHealth", {}).get("State", ""),
        )
        for d in described["TargetHealthDescriptions"]
    )


def deregister(
    elbv2: Any, target_group_arn: str, targets: Sequence[str], vpc_cidrs: Iterable[IPv4Network]
) -> int:
    """Targets are described as they were registered (zone `all` for on-prem IPs)."""
    cidrs = tuple(vpc_cidrs)
    for chunk in chunks(targets):
        elbv2.deregister_targets(TargetGroupArn=target_group_arn, Targets=_described(chunk, cidrs))
    return len(targets)


def register(
    elbv2: Any, target_group_arn: str, targets: Sequence[str], vpc_cidrs: Iterable[IPv4Network]
) -> int:
    cidrs = tuple(vpc_cidrs)
    for chunk in chunks(targets):
        elbv2.register_targets(TargetGroupArn=target_group_arn, Targets=_described(chunk, cidrs))
    return len(targets)


def _described(targets: Iterable[str], vpc_cidrs: tuple[IPv4Network, ...]) -> list[dict[str, Any]]:
    described = []
    for key in targets:
        address, port = split_target(key)
        target: dict[str, Any] = {"Id": address, "Port": port}
        if vpc_cidrs and needs_zone_all(address, vpc_cidrs):
            target["AvailabilityZone"] = "all"
        described.append(target)
    return described
