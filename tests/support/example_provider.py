"""A tiny but real dynamic provider, only to prove tests/support/provider_harness.py end to end.

It manages one JSON file at ``path``. The file records the host's pid (proving the code ran
inside the host after a dill round trip), an env var and a config value (proving env and
Configure reach the provider).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    ConfigureRequest,
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)

ENV_TAG = "COUNTER_FILE_TAG"
"""Env var copied into the file, to prove the caller's env reaches the host."""


def _write(path: str, content: str, writes: int, owner: str | None) -> dict[str, Any]:
    """Write the file and return what it now holds (also the resource's outputs)."""
    state = {
        "path": path,
        "content": content,
        "writes": writes,
        "pid": os.getpid(),
        "env_tag": os.environ.get(ENV_TAG, ""),
        "owner": owner or "",
    }
    Path(path).write_text(json.dumps(state))
    return state


class CounterFileProvider(ResourceProvider):
    """Creates/updates/deletes a JSON file; ``path`` changes force a replace."""

    owner: str | None = None

    def configure(self, req: ConfigureRequest) -> None:
        self.owner = req.config.get("owner")

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures = []
        if not isinstance(news.get("path"), str) or not news.get("path"):
            failures.append(CheckFailure("path", "path must be a non-empty string"))
        return CheckResult(news, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = ["path"] if olds.get("path") != news.get("path") else []
        changes = bool(replaces) or olds.get("content") != news.get("content")
        pulumi.log.info(f"counter-file {news.get('path')}: changes={changes} replaces={replaces}")
        return DiffResult(changes=changes, replaces=replaces, delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> CreateResult:
        outs = _write(props["path"], props.get("content", ""), 1, self.owner)
        return CreateResult(id_=props["path"], outs=outs)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_=id_, outs=json.loads(Path(id_).read_text()))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        writes = int(olds.get("writes", 0)) + 1
        return UpdateResult(outs=_write(news["path"], news.get("content", ""), writes, self.owner))

    def delete(self, id_: str, _props: dict[str, Any]) -> None:
        Path(id_).unlink(missing_ok=True)


class FailingProvider(ResourceProvider):
    """Raises from create, to show how provider errors come back through the host."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        raise RuntimeError(f"quota exceeded for counter files in {props.get('path')}")
