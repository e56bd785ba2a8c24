"""The waves tool as a user runs it: `python -m tools.release.waves` in a real process, with no
cloud credential and no config dir, and the README's rollback examples."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

from model.release import (
    release_plan,
)
from model.stackfile import ROOT
from tests.support.waves import copy_of_prod, files_in
from tools.release import waves as tool

# --- the tool without Alertmanager ----------------------------------------------------------


def run_waves(*args: str) -> subprocess.CompletedProcess[str]:
    """`python -m tools.release.waves` in a real process, as a user runs it, with no cloud
    credential and no config dir: what it says comes from the stack file alone."""
    return subprocess.run(
        [sys.executable, "-m", "tools.release.waves", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"},
    )


def test_the_cli_prints_each_wave_with_prods_clusters_users_and_versions():
    done = run_waves("--stack", "prod")
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines()]
    assert rows[0][:3] == ["prod:", "release", "2.3.1"]
    assert ["wave", "1", "test", "released", "C-2", "on", "C", "40", "users", "runs", "2.3.1"] in (
        rows
    )
    assert ["A-1", "on", "A", "8800", "users", "runs", "2.3.1"] in rows


def test_a_dry_run_advance_runs_the_checks_prints_the_change_and_writes_nothing(tmp_path):
    """As a new user tries it, in a real process: the stack file keeps every byte."""
    copy_of_prod(tmp_path, wave=0, verified=False)
    before = files_in(tmp_path)
    done = run_waves("--stack", "prod", "--root", str(tmp_path), "--advance", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        "release.wave 0 → 1 in Pulumi.prod.yaml: C-2 take 2.3.1 at the next `pulumi up` (no "
        "Prod ran the new version yet, so no alert to check)\ndry run: nothing was written\n"
    )
    assert files_in(tmp_path) == before


# --- rollback as a routing switch ------------------------------------------------------------


def readme_blocks() -> list[tuple[str, str]]:
    """The fenced blocks of the README's rollback part, as (language, text)."""
    readme = (ROOT / "README.md").read_text()
    part = readme[readme.index("**Roll back in seconds**") : readme.index("**Upgrade a cluster")]
    return re.findall(r"```(\w*)\n(.*?)```", part, flags=re.S)


def as_run_here(command: str, scratch: Path) -> str:
    """A README command as this test runs it: this interpreter, the scratch directory."""
    return command.replace("uv run python", shlex.quote(sys.executable)).replace(
        "/tmp/wave-2", str(scratch)
    )


def test_the_readme_rollback_examples_print_what_the_readme_shows(tmp_path):
    """Docs that work when copied: the README's commands, run as written (but for the scratch
    directory and the interpreter), print its output blocks, and write no stack file."""
    (_, commands), (_, try_it), (_, printed), (_, refusal) = readme_blocks()
    before = files_in(ROOT)
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", as_run_here(try_it, tmp_path / "wave-2")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == printed
    assert (
        release_plan(
            tool.load_config((tmp_path / "wave-2" / "Pulumi.prod.yaml").read_text())
        ).current
        == 2
    )
    dry_run = next(c for c in commands.splitlines() if "--rollback --dry-run" in c)
    done = subprocess.run(
        ["bash", "-c", as_run_here(dry_run.split("#")[0], tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (done.returncode, done.stdout, done.stderr) == (1, "", refusal)
    assert files_in(ROOT) == before
