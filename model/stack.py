"""A stack's configuration, parsed and checked whole, wherever it is read.

The program (`load`, from what the engine passes), the synth tool (which runs the program) and
the release tools (`model.stackfile.project_values` of the stack file) all end in `parse`:
every key into its model, then every rule across keys. So a stack file that passes one of them
passes all, and every problem is reported in one run, each with its key path, before any
resource exists.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date
from typing import Any

import pulumi

from model import rules
from model.config import ConfigError, StackConfig, parse_keys
from model.stackfile import PROJECT


def parse(
    raw: Mapping[str, Any], source: str | None = None, *, today: date | None = None
) -> StackConfig:
    """The stack's `hybrid-infra:*` values (keys without the namespace), parsed and checked.

    `today` is the day the calendar rules (Kubernetes versions' end of support) are checked on:
    the program and the tools pass the machine's date, tests a fixed one; None means the
    machine's date.
    """
    config = parse_keys(raw, source)
    problems = rules.problems(config, date.today() if today is None else today)
    if problems:
        raise ConfigError(problems, source)
    return config


def warnings(config: StackConfig, *, today: date) -> list[str]:
    """What a parsed stack may build but should change soon, one line per key path."""
    return rules.warnings(config, today)


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
