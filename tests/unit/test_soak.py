"""The soak runs from the update that last changed a Prod's version or the wave, not from any
update: histories shaped as `pulumi stack history --json` prints them (pulumi v3.274
`updateInfoJSON`: newest first, each with the stack config it ran, secrets blinded), built from
the prod stack file; and the gate's reading of them through a stand-in `pulumi` executable."""

from __future__ import annotations

import copy
import datetime
import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from model.soak import running_release, soak_start
from tests.fixtures.program import raw_of
from tools.release import gate
from tools.synth import stack_config

NS = "hybrid-infra:"
T0 = datetime.datetime(2026, 11, 29, 9, 0, tzinfo=datetime.UTC)
Mutation = Callable[[dict[str, Any]], None]


@functools.cache
def _prod_stack() -> tuple[dict[str, str], list[str], dict[str, Any]]:
    config, secret_keys = stack_config("prod")
    return config, secret_keys, raw_of("prod")


def recorded_config(mutate: Mutation | None = None) -> dict[str, Any]:
    """The prod stack's config as an update records it: objects parsed, secrets blinded."""
    config, secret_keys, stack_raw = _prod_stack()
    raw = copy.deepcopy(stack_raw)
    if mutate is not None:
        mutate(raw)
    recorded: dict[str, Any] = {}
    for key, wire in config.items():
        if key in secret_keys:
            recorded[key] = {"secret": True}
        elif key.startswith(NS) and key[len(NS) :] in raw:
            value = raw[key[len(NS) :]]
            entry: dict[str, Any] = {"value": json.dumps(value), "secret": False}
            if isinstance(value, dict | list):
                entry["objectValue"] = value
            recorded[key] = entry
        else:
            recorded[key] = {"value": wire, "secret": False}
    return recorded


def at_wave(wave: int, version: str = "2.3.1") -> Mutation:
    def apply(raw: dict[str, Any]) -> None:
        raw["release"].update(wave=wave, version=version)

    return apply


def update(
    minutes: int,
    mutate: Mutation | None = None,
    *,
    kind: str = "update",
    result: str = "succeeded",
    took: int = 3,
    message: str = "drift remediation",
) -> dict[str, Any]:
    """One history entry, started `minutes` after T0."""
    start = T0 + datetime.timedelta(minutes=minutes)
    entry: dict[str, Any] = {
        "version": 0,  # the file backend numbers nothing; Pulumi Cloud counts up
        "kind": kind,
        "startTime": _cli_time(start),
        "message": message,
        "environment": {
            "exec.kind": "cli",
            "git.head": "9d1f0c2b7e4a",
            "pulumi.version": "v3.274.1",
        },
        "config": recorded_config(mutate),
        "result": result,
    }
    if result != "in-progress":
        entry["endTime"] = _cli_time(start + datetime.timedelta(minutes=took))
        entry["resourceChanges"] = {"same": 412, "update": 1}
    return entry


def ended(minutes: int, took: int = 3) -> datetime.datetime:
    return T0 + datetime.timedelta(minutes=minutes + took)


def _cli_time(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def newest_first(*entries: dict[str, Any]) -> list[dict[str, Any]]:
    return sorted(entries, key=lambda e: e["startTime"], reverse=True)


# --- the rule ---------------------------------------------------------------------------------


def test_drift_updates_after_a_wave_change_leave_the_soak_running():
    """Wave 2 went out at T0; five drift `up`s followed, one of them after a team changed an LB's
    weights. The soak still counts from the wave change."""

    def weights(raw: dict[str, Any]) -> None:
        at_wave(2)(raw)
        raw["loadBalancers"][1]["dns"]["weights"] = {"octavia": 50, "nlb": 50}

    history = newest_first(
        update(-60, at_wave(1)),
        update(0, at_wave(2), message="release.wave 1 → 2"),
        *(update(10 * i, at_wave(2)) for i in (1, 2, 3)),
        update(40, weights),
        update(50, weights),
    )
    soak = soak_start(history)
    assert (soak.since, soak.complete, soak.problem) == (ended(0), True, None)


def test_a_wave_change_restarts_the_soak():
    history = newest_first(update(0, at_wave(2)), update(10, at_wave(2)), update(20, at_wave(3)))
    assert soak_start(history).since == ended(20)


def test_a_new_version_at_the_same_wave_restarts_the_soak():
    """A hotfix (2.3.2) released at wave 2 changes the version of C-2 and C-1, not the wave."""
    history = newest_first(update(0, at_wave(2)), update(10, at_wave(2, version="2.3.2")))
    assert soak_start(history).since == ended(10)


def test_a_segment_move_that_changes_no_prods_version_leaves_the_soak_running():
    """A routing change (a drain, a rollback's moves) re-routes users; unless it moves a Prod
    to another wave, no Prod changes version."""

    def drain_c(raw: dict[str, Any]) -> None:
        at_wave(2)(raw)
        raw["clusters"]["C"]["drained"] = True  # C-2 and C-1, the updated Prods, lose users

    assert running_release(recorded_config(drain_c)) == running_release(recorded_config(at_wave(2)))
    history = newest_first(update(0, at_wave(2)), update(10, drain_c))
    assert soak_start(history).since == ended(0)


def test_a_failed_drift_update_of_the_same_release_leaves_the_soak_running():
    history = newest_first(
        update(0, at_wave(2)),
        update(10, at_wave(2), result="failed"),
        update(20, at_wave(2)),
        update(30, at_wave(2), result="in-progress"),
    )
    assert soak_start(history) == soak_start(newest_first(update(0, at_wave(2))))
    assert soak_start(history).since == ended(0)


def test_a_newest_update_that_changes_the_release_and_fails_means_nothing_has_soaked():
    """It may have rolled some Prods to wave 3's version before it failed."""
    history = newest_first(update(0, at_wave(2)), update(10, at_wave(3), result="failed"))
    soak = soak_start(history)
    assert soak.since is None
    assert soak.problem is not None
    assert soak.problem.startswith("the newest update changes the release and ended failed")


def test_an_update_changing_the_release_right_now_means_nothing_has_soaked():
    history = newest_first(update(0, at_wave(2)), update(10, at_wave(3), result="in-progress"))
    problem = soak_start(history).problem
    assert problem is not None and "is still running" in problem


def test_a_failed_update_that_changed_the_release_ends_the_run_of_the_same_release():
    """Wave 2, then a failed attempt at wave 3 (Prods half rolled), then wave 2 again: the Prods
    went back at the last update, so that is where the soak starts."""
    history = newest_first(
        update(0, at_wave(2)), update(10, at_wave(3), result="failed"), update(20, at_wave(2))
    )
    assert soak_start(history).since == ended(20)


def test_refreshes_count_for_nothing_and_a_destroy_forgets_what_ran_before():
    history = newest_first(
        update(0, at_wave(2)),
        update(10, kind="destroy", message="pulumi destroy"),
        update(20, at_wave(2)),
        update(30, at_wave(3), kind="refresh", message="pulumi refresh"),
    )
    assert soak_start(history).since == ended(20)


def test_history_that_ends_before_the_change_gives_the_oldest_seen_and_says_so():
    soak = soak_start(newest_first(update(50, at_wave(2)), update(60, at_wave(2))))
    assert (soak.since, soak.complete) == (ended(50), False)


def test_a_release_the_history_cannot_read_is_refused_rather_than_guessed():
    """A config recorded with the release as a secret (blinded in the history)."""
    entry = update(0, at_wave(2))
    entry["config"][f"{NS}release"] = {"secret": True}
    soak = soak_start([entry])
    assert soak.since is None
    assert soak.problem is not None and "cannot be read" in soak.problem


def test_no_update_at_all_has_no_soak():
    assert soak_start([]).since is None


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
