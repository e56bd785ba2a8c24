"""The `local` stack of the real program on local clusters: its project directory and stack file.

`scripts/local.sh` and the engine tests both make it here, so what a newcomer runs is what CI
tests. The project directory holds only `Pulumi.yaml` (whose `main` points at the repository
root, the real program) and the stack file; the stack file is `devenv/local/stack.yaml` plus
each cluster's kubeconfig, set as a secret by the CLI itself (`config set --secret --path`).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "devenv" / "local" / "stack.yaml"
PROJECT_FILE = ROOT / "devenv" / "local" / "Pulumi.yaml"


def write_project(work_dir: Path) -> None:
    """`Pulumi.yaml` in `work_dir`, running the program at the repository root."""
    work_dir.mkdir(parents=True, exist_ok=True)
    project = yaml.safe_load(PROJECT_FILE.read_text())
    project["main"] = os.path.relpath(ROOT, work_dir)
    (work_dir / "Pulumi.yaml").write_text(yaml.safe_dump(project, sort_keys=False))


def init_stack(
    pulumi: Sequence[str],
    work_dir: Path,
    stack: str,
    kubeconfigs: Mapping[str, str],
    env: Mapping[str, str],
    overrides: Mapping[str, Any] | None = None,
) -> Path:
    """Create `stack` from the template, with each cluster's kubeconfig as a secret.

    `overrides` replaces whole `hybrid-infra:*` keys (tests use it for other shapes of fleet).
    """

    def run(*args: str, stdin: str | None = None) -> None:
        subprocess.run(
            [*pulumi, *args, "--non-interactive"],
            cwd=work_dir,
            env=dict(env),
            input=stdin,
            text=True,
            capture_output=True,
            check=True,
        )

    run("stack", "init", stack)
    stack_file = work_dir / f"Pulumi.{stack}.yaml"
    # The CLI wrote the passphrase's salt; the template goes below it as written (ruamel keeps
    # its flow lists, which tools.release.waves edits in place).
    salt = stack_file.read_text() if stack_file.exists() else ""
    stack_file.write_text(salt + TEMPLATE.read_text())
    for key, value in (overrides or {}).items():
        edit_config(stack_file, key, value)
    config = _load(stack_file)["config"]
    clusters = config["hybrid-infra:clusters"]
    for name in clusters:
        if name not in kubeconfigs:
            continue
        # The value goes through stdin: a kubeconfig never appears on a command line.
        run(
            "config",
            "set",
            "--secret",
            "--path",
            f"hybrid-infra:clusters.{name}.kubeconfig",
            stdin=kubeconfigs[name],
        )
    return stack_file


def edit_config(stack_file: Path, path: str, value: Any) -> None:
    """Set `hybrid-infra:<path>` (dotted) in the stack file, as an operator edits it."""
    document = _load(stack_file)
    key, *rest = path.split(".")
    if not rest:
        document["config"][f"hybrid-infra:{key}"] = value
    else:
        node = document["config"][f"hybrid-infra:{key}"]
        for part in rest[:-1]:
            node = node[part]
        node[rest[-1]] = value
    with stack_file.open("w") as out:
        _yaml().dump(document, out)


def _yaml() -> YAML:
    yaml_rt = YAML()
    yaml_rt.preserve_quotes = True
    return yaml_rt


def _load(stack_file: Path) -> Any:
    return _yaml().load(stack_file.read_text())
