"""What the soak tests share: the prod stack's config as an update recorded it, and the stack's
update history, newest first."""

from __future__ import annotations

import copy
import datetime
import functools
import json
from collections.abc import Callable
from typing import Any

from tests.fixtures.program import raw_of
from tools.synth import stack_config

NS = "hybrid-infra:"


T0 = datetime.datetime(2026, 11, 29, 9, 0, tzinfo=datetime.UTC)


Mutation = Callable[[dict[str, Any]], None]


@functools.cache
def _prod_stack() -> tuple[dict[str, str], list[str], dict[str, Any]]:
    config, secret_keys = stack_config("prod")
    return config, secret_keys, raw_of("prod")


def recorded_config(mutate: Mutation | None = None) -> dict[str, Any]:
    """The prod stack's config as an update records it: objects parsed, secrets blinded."""
    config, secret_keys, stack_raw = _prod_stack()
    raw = copy.deepcopy(stack_raw)
    if mutate is not None:
        mutate(raw)
    recorded: dict[str, Any] = {}
    for key, wire in config.items():
        if key in secret_keys:
            recorded[key] = {"secret": True}
        elif key.startswith(NS) and key[len(NS) :] in raw:
            value = raw[key[len(NS) :]]
            entry: dict[str, Any] = {"value": json.dumps(value), "secret": False}
            if isinstance(value, dict | list):
                entry["objectValue"] = value
            recorded[key] = entry
        else:
            recorded[key] = {"value": wire, "secret": False}
    return recorded


def at_wave(wave: int, version: str = "2.3.1") -> Mutation:
    def apply(raw: dict[str, Any]) -> None:
        raw["release"].update(wave=wave, version=version)

    return apply


def update(
    minutes: int,
    mutate: Mutation | None = None,
    *,
    kind: str = "update",
    result: str = "succeeded",
    took: int = 3,
    message: str = "drift remediation",
) -> dict[str, Any]:
    """One history entry, started `minutes` after T0."""
    start = T0 + datetime.timedelta(minutes=minutes)
    entry: dict[str, Any] = {
        "version": 0,  # the file backend numbers nothing; Pulumi Cloud counts up
        "kind": kind,
        "startTime": _cli_time(start),
        "message": message,
        "environment": {
            "exec.kind": "cli",
            "git.head": "9d1f0c2b7e4a",
            "pulumi.version": "v3.274.1",
        },
        "config": recorded_config(mutate),
        "result": result,
    }
    if result != "in-progress":
        entry["endTime"] = _cli_time(start + datetime.timedelta(minutes=took))
        entry["resourceChanges"] = {"same": 412, "update": 1}
    return entry


def ended(minutes: int, took: int = 3) -> datetime.datetime:
    return T0 + datetime.timedelta(minutes=minutes + took)


def _cli_time(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def newest_first(*entries: dict[str, Any]) -> list[dict[str, Any]]:
    return sorted(entries, key=lambda e: e["startTime"], reverse=True)
