"""The soak runs from the update that last changed a Prod's version or the wave, not from any
update: histories shaped as `pulumi stack history --json` prints them (pulumi v3.274
`updateInfoJSON`: newest first, each with the stack config it ran, secrets blinded), built from
the prod stack file; and the gate's reading of them through a stand-in `pulumi` executable."""

from __future__ import annotations

from typing import Any

from model.soak import running_release, soak_start
from tests.support.soak import NS, at_wave, ended, newest_first, recorded_config, update

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
