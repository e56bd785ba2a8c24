"""The policy pack (policy/) run by the real engine on a program that breaks a mandatory rule."""

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


def test_a_program_that_keeps_the_rules_passes(engine: Engine, tmp_path: Path):
    engine.world({"note": "no hybrid LB here"})
    result = engine.run("preview", "--policy-pack", str(pack_executable(tmp_path)), check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "hybrid-infra@" in result.stdout  # the pack ran
