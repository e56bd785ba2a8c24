"""The real Pulumi CLI and engine, built by scripts/pulumi-cli.sh, on a local file backend.

`engine` gives a fresh stack of the program in tests/engine/program/, copied into the test's
tmp dir (the stack's config file is written there, never into the repository). Every command is
exactly what a user types; the state lives in `file://<tmp>/state`, secrets are encrypted with a
passphrase. The project's own modules reach the program, the provider host and the policy pack
through PYTHONPATH. The Octavia API, moto and the local Kubernetes clusters are the tests' usual
local servers; their OS_* / AWS_* environment comes from the fixtures the test requests *before*
`engine`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.go_built import go_built

ROOT = Path(__file__).resolve().parents[2]
PROGRAM = Path(__file__).parent / "program"
BIN_ENV = "HYBRID_INFRA_PULUMI_BIN"
PASSPHRASE = "engine-test-passphrase"
STACK = "engine"
TIMEOUT = 600


@pytest.fixture(scope="session")
def pulumi_bin() -> Path:
    """The directory holding `pulumi` and its Python plugins (scripts/pulumi-cli.sh)."""
    return go_built(BIN_ENV, "pulumi-cli.sh", "the engine tests")


class EngineError(Exception):
    """A CLI command failed; carries its combined output for the assertion message."""

    def __init__(self, args: list[str], result: subprocess.CompletedProcess[str]) -> None:
        self.output = result.stdout + result.stderr
        super().__init__(f"pulumi {' '.join(args)} exited {result.returncode}:\n{self.output}")


@dataclass
class Engine:
    """One stack of a program in `work_dir`, driven through the real CLI."""

    bin_dir: Path
    work_dir: Path
    env: dict[str, str]

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin_dir / "pulumi"), *args, "--non-interactive"]
        result = subprocess.run(
            command,
            cwd=self.work_dir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        if check and result.returncode != 0:
            raise EngineError(list(args), result)
        return result

    def world(self, world: dict[str, Any]) -> None:
        """Set the program's whole description (`engine-test:world`) for the next command."""
        self.run("config", "set", "engine-test:world", json.dumps(world))

    def secret(self, key: str, value: str) -> None:
        # Through stdin, so the value is never a command-line argument.
        command = [str(self.bin_dir / "pulumi"), "config", "set", "--secret", key]
        subprocess.run(
            command,
            input=value,
            cwd=self.work_dir,
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
        )

    def preview(self, *args: str) -> str:
        """What the terminal shows: a provider's log lines during `diff` reach the CLI's stderr."""
        return _shown(self.run("preview", "--diff", *args))

    def up(self, *args: str) -> str:
        return _shown(self.run("up", "--yes", "--skip-preview", *args))

    def outputs(self) -> dict[str, Any]:
        return json.loads(self.run("stack", "output", "--json", "--show-secrets").stdout)

    def export(self) -> str:
        """The state file's text, as `pulumi stack export` writes it (secrets stay encrypted)."""
        return self.run("stack", "export").stdout

    def resources(self) -> dict[str, dict[str, Any]]:
        """Resources in state by name (the last URN segment)."""
        deployment = json.loads(self.export())["deployment"]
        return {r["urn"].rsplit("::", 1)[-1]: r for r in deployment.get("resources", [])}


def _shown(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def engine_env(bin_dir: Path, home: Path, state: Path) -> dict[str, str]:
    venv_bin = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "PATH": os.pathsep.join([str(bin_dir), venv_bin, os.environ.get("PATH", "")]),
        "PYTHONPATH": str(ROOT),
        "PULUMI_PYTHON_CMD": sys.executable,
        "PULUMI_HOME": str(home),
        "PULUMI_BACKEND_URL": f"file://{state}",
        "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DEBUG_COMMANDS": "true",  # enables `--event-log`, the engine's step record
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        "NO_COLOR": "1",
    }


@pytest.fixture
def engine_factory(pulumi_bin: Path, tmp_path: Path) -> Iterator[Any]:
    """`engine_factory(program_dir)` → a new stack of that program in a tmp copy of it."""
    made: list[Engine] = []

    def make(program: Path = PROGRAM, stack: str = STACK) -> Engine:
        work = tmp_path / f"{program.name}-{len(made)}"
        shutil.copytree(
            program, work, ignore=shutil.ignore_patterns("__pycache__", "Pulumi.*.yaml")
        )
        state = tmp_path / "state"
        state.mkdir(exist_ok=True)
        engine = Engine(pulumi_bin, work, engine_env(pulumi_bin, tmp_path / "home", state))
        engine.run("stack", "init", stack)
        made.append(engine)
        return engine

    yield make


@pytest.fixture
def engine(engine_factory: Any) -> Engine:
    return engine_factory()
