"""A stack's configuration, parsed and checked whole, wherever it is read.

The program (`components.stack_config.load`, from what the engine passes), the synth tool
(which runs the program) and the release tools (`model.stackfile.project_values` of the stack
file) all end in `parse`:
every key into its model, then every rule across keys. So a stack file that passes one of them
passes all, and every problem is reported in one run, each with its key path, before any
resource exists.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from model import rules
from model.config import ConfigError, StackConfig, parse_keys


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
