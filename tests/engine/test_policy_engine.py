"""The policy pack (policy/) run by the real engine on programs that break a mandatory rule."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.engine.conftest import ROOT, Engine

pytestmark = pytest.mark.engine

POLICY_PROGRAM = Path(__file__).parent / "policy_program"


def pack_executable(tmp_path: Path) -> Path:
    """The pack as an executable analyzer plugin, which the engine starts with its address.

    A user's CLI starts `--policy-pack policy/` through its Python language host (RunPlugin).
    The host these tests can build (scripts/pulumi-cli.sh) predates the `info` field in which
    today's CLI names the pack, so the tests hand the engine the one command that host would
    run, `python policy/ <engine address>`; the pack's code and the engine's evaluation and
    enforcement are the real ones.
    """
    runner = tmp_path / "hybrid-infra-policy-pack"
    runner.write_text(f'#!/bin/sh\nexec "{sys.executable}" -u "{ROOT / "policy"}" "$@"\n')
    runner.chmod(0o755)
    return runner


def test_a_mandatory_violation_fails_the_preview(engine_factory, tmp_path: Path):
    engine: Engine = engine_factory(POLICY_PROGRAM)
    result = engine.run("preview", "--policy-pack", str(pack_executable(tmp_path)), check=False)
    shown = result.stdout + result.stderr
    assert result.returncode != 0, shown
    assert "[mandatory]  hybrid-lb-has-nlb-twin-and-sync" in shown
    assert "hybrid LB 'shop' has 0 NLB twins; it needs exactly 1" in shown
    assert "hybrid LB 'shop' has 0 member syncs; it needs exactly 1" in shown


def stand_in_plugin(engine: Engine, package: str, tmp_path: Path) -> None:
    """Put `pulumi-resource-<package>` on the engine's PATH, served by the stand-in provider
    (tests/engine/stand_in_provider.py); the engine takes a plugin on PATH before any other."""
    plugins = tmp_path / "plugins"
    plugins.mkdir(exist_ok=True)
    shim = plugins / f"pulumi-resource-{package}"
    shim.write_text(
        f'#!/bin/sh\nexec "{sys.executable}" -u -m tests.engine.stand_in_provider "$@"\n'
    )
    shim.chmod(0o755)
    engine.env["PATH"] = f"{plugins}:{engine.env['PATH']}"


def test_ssh_opened_in_two_halves_of_ipv4_fails_the_preview(engine_factory, tmp_path: Path):
    """Neither rule admits 0.0.0.0/0; together they do. The rules name their group by an id
    the preview does not know yet, so the pack groups them by the engine's dependencies."""
    engine: Engine = engine_factory(POLICY_PROGRAM)
    stand_in_plugin(engine, "aws", tmp_path)
    engine.run("config", "set", "case", "ssh-in-halves")
    result = engine.run("preview", "--policy-pack", str(pack_executable(tmp_path)), check=False)
    shown = result.stdout + result.stderr
    assert result.returncode != 0, shown
    assert "[mandatory]  no-management-ports-open-to-world" in shown
    assert shown.count("22 (SSH) open to the world") == 2, shown
    assert "together admit 0.0.0.0/0 (3,702,258,688 public IPv4 addresses)" in shown


def test_a_program_that_keeps_the_rules_passes(engine: Engine, tmp_path: Path):
    engine.world({"note": "no hybrid LB here"})
    result = engine.run("preview", "--policy-pack", str(pack_executable(tmp_path)), check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "hybrid-infra@" in result.stdout  # the pack ran
