"""The one reader of `Pulumi.<stack>.yaml`, and the names every reader shares.

The synth tool, waves and promote read stack files here; the program gets the same values from
the engine. `PROJECT` (the config namespace), `STACK_ORDER` and the secret placeholder are
written down once, here.

Every mistake a user can make here (an unknown stack, a missing or unreadable file, a YAML
syntax error) becomes a `StackFileError` whose message is one line that names the file, and
the line and column for a syntax error; the tools print it and exit 2.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
"""The program's directory: `Pulumi.yaml`, `__main__.py` and every stack file."""
PROJECT = "hybrid-infra"
STACK_ORDER: tuple[str, ...] = ("dev", "staging", "prod")
"""The one place the order of environments is written down: a release is promoted along it."""
SECRET_PLACEHOLDER = "[secret]"
"""A secure value cannot be decrypted without the stack's key: it stands in, marked secret."""


class StackFileError(Exception):
    """The stack file is missing, unreadable or not YAML; the message says which and where."""


@dataclass(frozen=True)
class StackFile:
    stack: str
    path: Path
    text: str = field(repr=False)
    document: dict[str, Any] = field(repr=False)

    def engine_config(self) -> tuple[dict[str, str], list[str]]:
        """The config as the engine hands it to a program: wire strings, and the secret keys."""
        config: dict[str, str] = {}
        secret_keys: list[str] = []
        for key, value in (self.document.get("config") or {}).items():
            full_key = key if ":" in key else f"{PROJECT}:{key}"
            if _is_secure(value):
                config[full_key] = SECRET_PLACEHOLDER
                secret_keys.append(full_key)
            elif isinstance(value, str):
                config[full_key] = value
            else:
                config[full_key] = json.dumps(value)
        return config, secret_keys


def project_values(document: Mapping[str, Any]) -> dict[str, Any]:
    """A stack document's `hybrid-infra:*` values, keys without the namespace; secure values
    become the placeholder (no tool holds the stack's key)."""
    raw: dict[str, Any] = {}
    for key, value in (document.get("config") or {}).items():
        namespace, _, name = key.partition(":")
        if namespace == PROJECT:
            raw[name] = SECRET_PLACEHOLDER if _is_secure(value) else value
    return raw


def _is_secure(value: Any) -> bool:
    return isinstance(value, Mapping) and set(value) == {"secure"}


def stack_names(root: Path) -> list[str]:
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in root.glob("Pulumi.*.yaml"))


def stack_path(stack: str, root: Path) -> Path:
    """The stack's file; an unknown stack is an error that lists the stacks there are."""
    path = root / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        known = ", ".join(stack_names(root)) or "none"
        raise StackFileError(f"unknown stack {stack!r}: no {path} (stacks here: {known})")
    return path


def read(stack: str, root: Path) -> StackFile:
    return read_path(stack_path(stack, root), stack)


def read_path(path: Path, stack: str | None = None) -> StackFile:
    try:
        text = path.read_text()
    except FileNotFoundError as error:
        raise StackFileError(f"{path}: no such file") from error
    except (OSError, UnicodeDecodeError) as error:
        raise StackFileError(f"{path}: cannot be read ({error})") from error
    try:
        document = yaml.safe_load(text) or {}
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise StackFileError(f"{where}: {error.problem or error.context}") from error
    except yaml.YAMLError as error:
        raise StackFileError(f"{path}: not YAML ({error})") from error
    if not isinstance(document, dict):
        raise StackFileError(f"{path}: a stack file is a mapping with a `config:` key")
    name = stack or path.name.removeprefix("Pulumi.").removesuffix(".yaml")
    return StackFile(name, path, text, document)
