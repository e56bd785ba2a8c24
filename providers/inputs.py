"""Input handling every dynamic provider here shares: defaults, changed keys, unknowns."""

from collections.abc import Iterable, Mapping
from typing import Any

from pulumi.runtime import rpc


def with_defaults(news: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """The inputs `check` returns: given values over defaults (a None means not given)."""
    return {**defaults, **{k: v for k, v in news.items() if v is not None}}


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
