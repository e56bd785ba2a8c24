"""The stack's configuration as the engine passes it to the program: the Pulumi side of
`model.stack.parse`, which the release tools reach from the stack file instead."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pulumi

from model.config import ConfigError, StackConfig
from model.stack import parse, warnings
from model.stackfile import PROJECT


class StackConfigError(ConfigError, pulumi.RunError):
    """A `ConfigError` as the engine shows it: the message for the operator, no traceback."""

    @classmethod
    def of(cls, error: ConfigError) -> StackConfigError:
        return cls(error.problems, error.source)


def load() -> StackConfig:
    """Every `hybrid-infra:*` key the engine passed to this program, parsed and checked; the
    warnings go to the engine's log (`pulumi preview` shows them)."""
    raw: dict[str, Any] = {}
    every_key = {**pulumi.runtime.config.get_config_env(), **pulumi.runtime.config.CONFIG.get()}
    for full_key in every_key:
        namespace, _, key = full_key.partition(":")
        if namespace != PROJECT:
            continue
        raw[key] = _decode(pulumi.runtime.get_config(full_key))
    today = date.today()
    config = parse(raw, source=f"Pulumi.{pulumi.get_stack()}.yaml", today=today)
    for warning in warnings(config, today=today):
        pulumi.log.warn(warning)
    return config


def _decode(value: Any) -> Any:
    """Structured config arrives as JSON text; plain strings stay strings."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value
