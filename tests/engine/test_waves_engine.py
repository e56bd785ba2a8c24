"""The wave gate reads what a stack really applied: its `releasePlan` output and the end of its
last successful update, through the real CLI and a file backend."""

from __future__ import annotations

import datetime

import pytest

from tests.engine.conftest import Engine
from tools.release import gate

pytestmark = pytest.mark.engine


def applied(engine: Engine) -> gate.Applied:
    return gate.applied_from_pulumi(
        "engine", engine.work_dir, env=engine.env, pulumi=str(engine.bin_dir / "pulumi")
    )


def test_the_gate_reads_the_applied_wave_and_when_it_was_applied(engine: Engine):
    with pytest.raises(gate.UsageError, match="cannot read what stack engine applied"):
        applied(engine)  # nothing applied yet: no output

    engine.world({"releasePlan": {"version": "2.3.1", "previousVersion": "2.3.0", "wave": 2}})
    began = datetime.datetime.now(datetime.UTC)
    engine.up()
    state = applied(engine)
    assert (state.wave, state.version) == (2, "2.3.1")
    assert (
        began - datetime.timedelta(seconds=5)
        <= state.finished
        <= datetime.datetime.now(datetime.UTC)
    )
