"""The wave gate reads what a stack really applied: its `releasePlan` output, and when the
update that last changed its release ended, through the real CLI and a file backend."""

from __future__ import annotations

import datetime
import json
import time

import pytest
import yaml

from tests.engine.conftest import Engine
from tools.release import gate

pytestmark = pytest.mark.engine

PRODS = {"C-2": {"cluster": "C", "test": True}, "C-1": {"cluster": "C"}}
SEGMENTS = [
    {"name": "staff", "users": 40, "prods": ["C-2"]},
    {"name": "trial", "users": 900, "prods": ["C-1"]},
]


def applied(engine: Engine) -> gate.Applied:
    return gate.applied_from_pulumi(
        "engine", engine.work_dir, env=engine.env, pulumi=str(engine.bin_dir / "pulumi")
    )


def release(engine: Engine, wave: int, note: str = "") -> None:
    """Edit the stack file as an operator does: the release keys as YAML objects, and the
    program's `releasePlan` output to match (the test program exports what it is told)."""
    plan = {"version": "2.3.1", "previousVersion": "2.3.0", "wave": wave}
    engine.world({"releasePlan": plan, "note": note})
    path = engine.work_dir / "Pulumi.engine.yaml"
    document = yaml.safe_load(path.read_text())
    document["config"].update(
        {
            "hybrid-infra:release": {**plan, "verified": True},
            "hybrid-infra:prods": PRODS,
            "hybrid-infra:segments": SEGMENTS,
        }
    )
    path.write_text(yaml.safe_dump(document))


def up(engine: Engine) -> None:
    """History times are whole seconds: keep updates apart so their order is plain."""
    time.sleep(1.1)
    engine.up()


def test_the_gate_reads_the_applied_wave_and_when_it_was_applied(engine: Engine):
    with pytest.raises(gate.UsageError, match="cannot read what stack engine applied"):
        applied(engine)  # nothing applied yet: no output

    release(engine, wave=2)
    began = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    engine.up()
    state = applied(engine)
    assert (state.wave, state.version) == (2, "2.3.1")
    assert began <= state.finished <= datetime.datetime.now(datetime.UTC)


def test_the_soak_runs_from_the_release_change_not_from_later_updates(engine: Engine):
    """A later `up` that changes a resource but not the release (drift remediation) leaves the
    soak running; the next wave restarts it."""
    release(engine, wave=1)
    up(engine)
    release(engine, wave=2)
    up(engine)
    changed = applied(engine).finished

    release(engine, wave=2, note="drift: a resource changed, the release did not")
    up(engine)
    history = json.loads(engine.run("stack", "history", "--json").stdout)
    assert [h["result"] for h in history] == ["succeeded"] * 3
    assert any(n for op, n in history[0]["resourceChanges"].items() if op != "same")
    recorded = history[0]["config"]["hybrid-infra:release"]
    assert recorded["objectValue"]["wave"] == 2  # the CLI records objects parsed
    assert applied(engine).finished == changed

    release(engine, wave=2)  # the note back: another update, the same release
    up(engine)
    assert applied(engine).finished == changed
    release(engine, wave=1)  # back to wave 1: a change too
    up(engine)
    assert applied(engine).finished > changed
