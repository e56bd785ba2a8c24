"""Input handling every dynamic provider here shares: defaults, changed keys, unknowns."""

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pulumi
from pulumi.dynamic import CheckFailure, CheckResult
from pulumi.runtime import rpc

Validate = Callable[[Mapping[str, Any]], list[tuple[str, str]]]


def with_defaults(news: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """The inputs `check` returns: given values over defaults (a None means not given)."""
    return {**defaults, **{k: v for k, v in news.items() if v is not None}}


def check_inputs(
    news: Mapping[str, Any], defaults: Mapping[str, Any], validate: Validate
) -> CheckResult:
    """`check` of every provider here: defaults applied, then one failure per bad property."""
    inputs = with_defaults(news, defaults)
    return CheckResult(inputs, [CheckFailure(p, r) for p, r in validate(inputs)])


def changed_inputs(
    olds: Mapping[str, Any],
    news: Mapping[str, Any],
    names: Iterable[str],
    defaults: Mapping[str, Any],
) -> list[str]:
    """Inputs whose value differs, a missing key counting as its default."""
    return [k for k in names if olds.get(k, defaults.get(k)) != news.get(k, defaults.get(k))]


def known(value: Any) -> bool:
    """False for a preview value the engine cannot know yet (anywhere inside `value`)."""
    return not rpc.contains_unknowns(value)


def keep_secret(opts: pulumi.ResourceOptions | None, *outputs: str) -> pulumi.ResourceOptions:
    """`opts` plus these outputs stored encrypted: the dynamic provider host cannot take secrets
    (it answers acceptSecrets=False), so without this the engine stores an echoed secret input
    in plaintext."""
    return pulumi.ResourceOptions.merge(
        opts, pulumi.ResourceOptions(additional_secret_outputs=list(outputs))
    )
