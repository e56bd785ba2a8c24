"""The operator tools as a user runs them (`python -m tools.synth`, `tools.release.waves`,
`tools.release.promote`: a real process): every typical mistake is one line on stderr and exit
2, before any slow work, and never a traceback; and the tools import with only the non-dev
dependencies, as the workflow and Deployments install them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from model.stackfile import ROOT

BROKEN_YAML = "config:\n  hybrid-infra:tags:\n    owner: [platform\n  gcp:project: x\n"


MODULES = {
    "synth": "tools.synth",
    "waves": "tools.release.waves",
    "promote": "tools.release.promote",
}


def run(tool: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", MODULES[tool], *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    """A stack directory whose prod file has a YAML syntax error on line 3; staging is fine."""
    (tmp_path / "Pulumi.prod.yaml").write_text(BROKEN_YAML)
    shutil.copy(ROOT / "Pulumi.staging.yaml", tmp_path)
    shutil.copy(ROOT / "Pulumi.dev.yaml", tmp_path)
    return tmp_path


def no_dot_path(tmp_path: Path) -> str:
    """A PATH with the interpreter's directory only: no Graphviz `dot`."""
    return str(Path(sys.executable).parent)


MISTAKES = {
    "synth: unknown stack": (
        ("synth", "--stack", "prd"),
        "error: unknown stack 'prd': no ",
        "(stacks here: dev, prod, staging)",
    ),
    "synth: yaml error": (
        ("synth", "--stack-file", "{broken}/Pulumi.prod.yaml"),
        "error: {broken}/Pulumi.prod.yaml:4:14: expected ',' or ']', but got ':'",
        "",
    ),
    "synth: missing diff file": (
        ("synth", "--stack", "prod", "--diff", "{tmp}/old.json"),
        "error: {tmp}/old.json: no such snapshot file",
        "",
    ),
    "synth: exit-code without diff": (
        ("synth", "--stack", "prod", "--exit-code"),
        "error: --exit-code only means something with --diff",
        "",
    ),
    "synth: no dot for an image": (
        ("synth", "--stack", "prod", "--graph", "{tmp}/prod.svg"),
        "error: Graphviz `dot` is not installed",
        "",
    ),
    "waves: unknown stack": (
        ("waves", "--stack", "prd"),
        "error: unknown stack 'prd': no ",
        "(stacks here: dev, prod, staging)",
    ),
    "waves: yaml error": (
        ("waves", "--stack", "prod", "--root", "{broken}"),
        "error: {broken}/Pulumi.prod.yaml:4:14: expected ',' or ']', but got ':'",
        "",
    ),
    "waves: url without scheme": (
        ("waves", "--stack", "prod", "--advance", "--alertmanager", "alertmanager:9093"),
        "error: --alertmanager alertmanager:9093: give a URL, e.g. http://alertmanager:9093",
        "",
    ),
    "waves: dry run of nothing": (
        ("waves", "--stack", "prod", "--dry-run"),
        "error: --dry-run only means something with --advance or --rollback",
        "nothing is ever written",
    ),
    "waves: alertmanager without advance": (
        ("waves", "--stack", "prod", "--rollback", "--alertmanager", "http://alertmanager:9093"),
        "error: --alertmanager only means something with --advance",
        "",
    ),
    "waves: advance and rollback at once": (
        ("waves", "--stack", "prod", "--advance", "--rollback", "--dry-run"),
        "error: --advance and --rollback are two different changes; give one of them",
        "",
    ),
    "promote: yaml error": (
        ("promote", "staging", "prod", "--dry-run", "--root", "{broken}"),
        "error: {broken}/Pulumi.prod.yaml:4:14: expected ',' or ']', but got ':'",
        "",
    ),
    "promote: missing stack file": (
        ("promote", "staging", "prod", "--dry-run", "--root", "{tmp}"),
        "error: unknown stack 'staging': no ",
        "(stacks here: none)",
    ),
}


def stack_files(*directories: Path) -> dict[Path, tuple[bytes, int]]:
    """Every stack file in `directories`, byte for byte with its modification time."""
    return {
        p: (p.read_bytes(), p.stat().st_mtime_ns)
        for directory in directories
        for p in sorted(directory.glob("Pulumi*.yaml"))
    }


@pytest.mark.parametrize("case", MISTAKES)
def test_a_mistake_is_one_line_and_exit_2(case, broken: Path, tmp_path: Path):
    """...and no stack file changes, in the repository or in the directory named."""
    args, start, end = MISTAKES[case]
    empty = tmp_path / "empty"
    empty.mkdir()
    fill = {"broken": str(broken), "tmp": str(empty)}
    tool, *rest = (a.format(**fill) for a in args)
    env = {"PATH": no_dot_path(tmp_path)} if "--graph" in rest else None
    before = stack_files(ROOT, broken, empty)
    done = run(tool, *rest, env=env)
    assert stack_files(ROOT, broken, empty) == before
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert len(lines) == 1, lines
    assert lines[0].startswith(start.format(**fill)), lines[0]
    assert lines[0].endswith(end), lines[0]


def test_help_is_answered_without_running_anything():
    for tool in ("synth", "waves", "promote"):
        done = run(tool, "--help")
        assert done.returncode == 0 and "usage: python -m tools." in done.stdout
    assert "the stack whose verified release is promoted" in run("promote", "--help").stdout


def test_tools_import_with_the_non_dev_dependencies_only(tmp_path: Path):
    """`uv sync --no-dev` is what the workflow and Deployments install."""
    uv = os.environ.get("UV") or shutil.which("uv")  # `uv run` names itself in $UV
    assert uv, "run the tests with `uv run pytest` (scripts/test.sh)"
    venv = tmp_path / "nodev"
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(venv)}
    subprocess.run([uv, "sync", "--frozen", "--no-dev", "--quiet"], cwd=ROOT, env=env, check=True)
    done = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import tools.release.waves, tools.release.promote, tools.synth.cli",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
