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
from typing import Any

import pulumi

from model import rules
from model.config import ConfigError, StackConfig, parse_keys
from model.stackfile import PROJECT


def parse(raw: Mapping[str, Any], source: str | None = None) -> StackConfig:
    """The stack's `hybrid-infra:*` values (keys without the namespace), parsed and checked."""
    config = parse_keys(raw, source)
    problems = rules.problems(config)
    if problems:
        raise ConfigError(problems, source)
    return config


def load() -> StackConfig:
    """Every `hybrid-infra:*` key the engine passed to this program, parsed and checked."""
    raw: dict[str, Any] = {}
    every_key = {**pulumi.runtime.config.get_config_env(), **pulumi.runtime.config.CONFIG.get()}
    for full_key in every_key:
        namespace, _, key = full_key.partition(":")
        if namespace != PROJECT:
            continue
        raw[key] = _decode(pulumi.runtime.get_config(full_key))
    return parse(raw, source=f"Pulumi.{pulumi.get_stack()}.yaml")


def _decode(value: Any) -> Any:
    """Structured config arrives as JSON text; plain strings stay strings."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value
