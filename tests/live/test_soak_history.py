"""The wave gate reads the soak from the stack's update history through the `pulumi` CLI, run as a
real process: it pages back through drift updates, stops at the change, and refuses while the
newest update changing the release failed."""

from __future__ import annotations

import copy
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.soak import at_wave, ended, newest_first, update
from tools.release import gate

# --- the gate reads it through the CLI --------------------------------------------------------


@pytest.fixture
def pulumi_stand_in(tmp_path: Path) -> Callable[[list[dict[str, Any]]], Path]:
    """A `pulumi` executable answering `stack output releasePlan --json` and
    `stack history --json --page-size N --page P` from a file, logging every call."""

    def make(history: list[dict[str, Any]]) -> Path:
        (tmp_path / "history.json").write_text(json.dumps(history))
        script = tmp_path / "pulumi"
        script.write_text(f"#!{sys.executable}\n" + PULUMI_STAND_IN.replace("{dir}", str(tmp_path)))
        script.chmod(0o755)
        return script

    return make


PULUMI_STAND_IN = """
import json, sys
args = sys.argv[1:]
with open("{dir}/calls.log", "a") as log:
    log.write(" ".join(args) + "\\n")
if args[:3] == ["stack", "output", "releasePlan"]:
    print(json.dumps({"version": "2.3.1", "previousVersion": "2.3.0", "wave": 2}))
elif args[:2] == ["stack", "history"]:
    size = int(args[args.index("--page-size") + 1])
    page = int(args[args.index("--page") + 1])
    history = json.load(open("{dir}/history.json"))
    print(json.dumps(history[(page - 1) * size : page * size]))
else:
    sys.exit(f"unexpected: {args}")
"""


def test_the_gate_pages_back_through_drift_updates_to_the_wave_change(tmp_path, pulumi_stand_in):
    """Over two pages of drift `up`s, every 10 minutes for 38 hours, lie between now and the
    wave change: the gate reads back as far as the change, and no further."""
    drift = [update(10 * i, at_wave(2)) for i in range(1, 2 * gate.HISTORY_PAGE + 30)]
    history = newest_first(update(-600, at_wave(1)), update(0, at_wave(2)), *drift)
    pulumi = pulumi_stand_in(history)
    applied = gate.applied_from_pulumi("prod", tmp_path, pulumi=str(pulumi))
    assert (applied.wave, applied.version, applied.finished) == (2, "2.3.1", ended(0))
    calls = (tmp_path / "calls.log").read_text().splitlines()
    pages = [c for c in calls if c.startswith("stack history")]
    assert pages == [
        f"stack history --json --page-size {gate.HISTORY_PAGE} --page {p} --stack prod"
        for p in (1, 2, 3)
    ]


def test_the_gate_stops_reading_history_at_the_change(tmp_path, pulumi_stand_in):
    history = newest_first(*(update(10 * i, at_wave(2)) for i in range(5)), update(-60, at_wave(1)))
    pulumi = pulumi_stand_in(history)
    applied = gate.applied_from_pulumi("prod", tmp_path, pulumi=str(pulumi))
    assert applied.finished == ended(0)
    calls = (tmp_path / "calls.log").read_text().splitlines()
    assert sum(c.startswith("stack history") for c in calls) == 1


def test_the_gate_refuses_while_the_newest_update_changing_the_release_failed(
    tmp_path, pulumi_stand_in
):
    history = newest_first(update(0, at_wave(2)), update(10, at_wave(3), result="failed"))
    pulumi = pulumi_stand_in(copy.deepcopy(history))
    with pytest.raises(gate.Refused, match="changes the release and ended failed"):
        gate.applied_from_pulumi("prod", tmp_path, pulumi=str(pulumi))
