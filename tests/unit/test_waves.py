"""The release plan (pure, with hypothesis properties), its config rules, and `tools.release.waves`
without an Alertmanager: printing the plan, refusals that need no alert, the stack-file edit."""

import datetime
import difflib
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from model.config import ConfigError, ProdSpec, Segment, StackConfig, parse_keys
from model.release import (
    ALERT_LABEL,
    SMALL_PERCENT,
    TIERS,
    alert_matcher,
    plan_release,
    release_plan,
)
from model.rollback import RollbackRefused, rollback
from model.stack import parse
from model.stackfile import ROOT
from tests.fixtures.program import raw_of
from tests.support.waves import copy_of_prod, copy_text, files_in
from tools.release import gate
from tools.release import waves as tool


def problems_of(raw: dict) -> list[str]:
    with pytest.raises(ConfigError) as error:
        parse(raw)
    return error.value.problems


# --- the update order: test Prod, few users, redundant users, the rest -------------------


def test_prod_waves_go_test_prod_then_few_users_then_redundant_then_the_rest():
    plan = release_plan(parse(raw_of("prod")))
    assert [set(w.names) for w in plan.waves] == [
        {"C-2"},
        {"C-1"},
        {"A-2", "B-1"},
        {"A-1", "B-2"},
    ]
    assert [w.tier for w in plan.waves] == ["test", "small", "redundant", "rest"]


def test_prods_in_released_waves_run_the_new_version_and_the_rest_the_previous():
    raw = raw_of("prod")
    raw["release"]["wave"] = 2
    plan = release_plan(parse(raw))
    versions = {name: p.version for name, p in plan.prods.items()}
    assert versions == {
        "C-2": "2.3.1",
        "C-1": "2.3.1",
        "A-2": "2.3.0",
        "B-1": "2.3.0",
        "A-1": "2.3.0",
        "B-2": "2.3.0",
    }
    assert set(plan.updated()) == {"C-2", "C-1"}


def test_a_prod_serving_a_redundant_and_a_single_segment_is_not_redundant():
    prods = {n: ProdSpec(cluster=c) for n, c in [("P", "A"), ("Q", "B"), ("R", "C")]}
    segments = [
        Segment(name="pair", users=5000, prods=("P", "Q")),
        Segment(name="solo", users=5000, prods=("P",)),
        Segment(name="rest", users=5000, prods=("R",)),
    ]
    plan = plan_release(prods, segments, "2", "1", 0)
    tiers = {name: p.tier for name, p in plan.prods.items()}
    assert tiers == {"Q": "redundant", "P": "rest", "R": "rest"}


# --- properties -----------------------------------------------------------------------------


names = st.sampled_from([f"{c}-{i}" for c in "ABCD" for i in range(1, 4)])


@st.composite
def fleets(draw):
    """Prods on a few clusters, and segments on one Prod or on two of different clusters."""
    prod_names = draw(st.lists(names, min_size=1, max_size=8, unique=True))
    prods = {
        n: ProdSpec(cluster=n.split("-")[0], test=draw(st.booleans()) and draw(st.booleans()))
        for n in prod_names
    }
    segments = []
    for i in range(draw(st.integers(0, 8))):
        first = draw(st.sampled_from(prod_names))
        others = [p for p in prod_names if prods[p].cluster != prods[first].cluster]
        pair = draw(st.booleans()) and others
        chosen = (first, draw(st.sampled_from(others))) if pair else (first,)
        segments.append(Segment(name=f"s{i}", users=draw(st.integers(0, 20000)), prods=chosen))
    return prods, segments


def users_of(prods, segments):
    return {n: sum(s.users for s in segments if n in s.prods) for n in prods}


def is_small(users, total):
    return users * 100 <= SMALL_PERCENT * total


def is_redundant(name, segments):
    mine = [s for s in segments if name in s.prods]
    return bool(mine) and all(len(s.prods) == 2 for s in mine)


@given(fleets(), st.integers(0, 6))
def test_every_prod_is_in_exactly_one_wave_and_waves_are_numbered_without_gaps(fleet, current):
    prods, segments = fleet
    plan = plan_release(prods, segments, "new", "old", current)
    placed = [p for w in plan.waves for p in w.names]
    assert sorted(placed) == sorted(prods)
    assert [w.number for w in plan.waves] == list(range(1, len(plan.waves) + 1))
    assert all(w.prods for w in plan.waves)
    assert [TIERS.index(w.tier) for w in plan.waves] == sorted(
        {TIERS.index(w.tier) for w in plan.waves}
    )


@given(fleets())
def test_test_prods_go_before_every_other_prod(fleet):
    prods, segments = fleet
    plan = release_plan_of(prods, segments)
    tests = [p.wave for p in plan.prods.values() if prods[p.name].test]
    others = [p.wave for p in plan.prods.values() if not prods[p.name].test]
    assert not tests or not others or max(tests) < min(others)


@given(fleets())
def test_small_prods_go_before_bigger_ones(fleet):
    prods, segments = fleet
    plan = release_plan_of(prods, segments)
    users, total = users_of(prods, segments), sum(s.users for s in segments)
    for p in plan.prods.values():
        for q in plan.prods.values():
            if prods[p.name].test or prods[q.name].test:
                continue
            if is_small(users[p.name], total) and not is_small(users[q.name], total):
                assert p.wave < q.wave
                assert users[p.name] < users[q.name]


@given(fleets())
def test_a_non_redundant_prod_never_precedes_a_redundant_one_of_the_same_size_tier(fleet):
    prods, segments = fleet
    plan = release_plan_of(prods, segments)
    users, total = users_of(prods, segments), sum(s.users for s in segments)
    big = [
        p
        for p in plan.prods.values()
        if not prods[p.name].test and not is_small(users[p.name], total)
    ]
    for p in big:
        for q in big:
            if is_redundant(p.name, segments) and not is_redundant(q.name, segments):
                assert p.wave < q.wave


@given(fleets())
def test_prods_of_equal_standing_share_a_wave(fleet):
    prods, segments = fleet
    plan = release_plan_of(prods, segments)
    users, total = users_of(prods, segments), sum(s.users for s in segments)

    def standing(name):
        return (prods[name].test, is_small(users[name], total), is_redundant(name, segments))

    for p in plan.prods.values():
        for q in plan.prods.values():
            if prods[p.name].test or prods[q.name].test:
                assert (p.wave == q.wave) == (prods[p.name].test == prods[q.name].test)
            else:
                # Small Prods share one wave whatever their redundancy.
                small = is_small(users[p.name], total) and is_small(users[q.name], total)
                assert (p.wave == q.wave) == (small or standing(p.name) == standing(q.name))


@given(fleets(), st.integers(0, 6), st.integers(0, 6))
def test_advancing_the_wave_never_rolls_a_prod_back(fleet, a, b):
    prods, segments = fleet
    low, high = sorted((a, b))
    before = plan_release(prods, segments, "new", "old", low).prods
    after = plan_release(prods, segments, "new", "old", high).prods
    for name, planned in before.items():
        assert planned.version == ("new" if planned.wave <= low else "old")
        if planned.version == "new":
            assert after[name].version == "new"


@given(fleets(), st.randoms(use_true_random=False))
def test_the_plan_does_not_depend_on_the_order_of_the_stack_file(fleet, random):
    prods, segments = fleet
    shuffled_names = list(prods)
    random.shuffle(shuffled_names)
    shuffled = {n: prods[n] for n in shuffled_names}
    reordered = list(segments)
    random.shuffle(reordered)
    assert release_plan_of(prods, segments).waves == release_plan_of(shuffled, reordered).waves


def release_plan_of(prods, segments):
    return plan_release(prods, segments, "new", "old", 0)


# --- release rules in the config (one test per rule) ----------------------------------------


def test_a_wave_past_the_last_one_is_a_config_error():
    raw = raw_of("prod")
    raw["release"]["wave"] = 5
    (problem,) = problems_of(raw)
    assert problem.startswith("hybrid-infra:release.wave: 5 is past the last wave (4)")


def test_an_unverified_version_may_reach_the_test_prod_but_not_users():
    raw = raw_of("staging")
    raw["release"].update(wave=1, verified=False)
    assert release_plan(parse(raw)).current == 1
    raw["release"]["wave"] = 2
    (problem,) = problems_of(raw)
    assert problem.startswith("hybrid-infra:release.verified: wave 2 reaches users")


@pytest.mark.parametrize(
    ("key", "value"), [("version", "2.4.0+build.7"), ("previousVersion", "-rc1")]
)
def test_a_version_that_is_no_label_value_is_a_config_error(key, value):
    raw = raw_of("prod")
    raw["release"][key] = value
    (problem,) = problems_of(raw)
    assert problem.startswith(f"hybrid-infra:release.{key}: {value!r} must be an image tag")


# --- the tool without Alertmanager ----------------------------------------------------------


def test_advancing_past_the_last_wave_is_refused(tmp_path, capsys):
    path = copy_of_prod(tmp_path, wave=4)
    before = path.read_text()
    assert tool.main(["--stack", "prod", "--root", str(tmp_path), "--advance"], environ={}) == 1
    assert "wave 4 is the last wave" in capsys.readouterr().err
    assert path.read_text() == before


def refused_advance(path: Path, applied: gate.Applied, capsys) -> str:
    """Advance, expecting a refusal that leaves the stack file as it was; returns stderr."""
    before = path.read_text()
    args = [
        "--stack",
        "prod",
        "--root",
        str(path.parent),
        "--advance",
        "--alertmanager",
        "http://x",
    ]
    assert tool.main(args, environ={}, applied=lambda: applied) == 1
    assert path.read_text() == before
    return capsys.readouterr().err


def test_advancing_to_users_with_an_unverified_version_is_refused(tmp_path, capsys):
    path = copy_of_prod(tmp_path, wave=1, verified=False)
    refusal = refused_advance(path, gate.Applied(1, "2.3.1", LONG_AGO), capsys)
    assert "2.3.1 is not verified: verify it on the test Prod(s) C-2" in refusal


def test_the_first_wave_needs_no_alertmanager_because_nothing_runs_the_new_version(tmp_path):
    path = copy_of_prod(tmp_path, wave=0, verified=False)
    assert tool.main(["--stack", "prod", "--root", str(tmp_path), "--advance"], environ={}) == 0
    assert release_plan(tool.load_config(path.read_text())).current == 1


def test_a_dry_run_advance_is_refused_for_the_same_reasons_as_the_real_one(tmp_path, capsys):
    path = copy_of_prod(tmp_path, wave=1, verified=False)
    before = files_in(tmp_path)
    args = ["--stack", "prod", "--root", str(tmp_path), "--advance", "--dry-run"]
    soaked = lambda: gate.Applied(1, "2.3.1", LONG_AGO)  # noqa: E731
    assert tool.main([*args, "--alertmanager", "http://x"], environ={}, applied=soaked) == 1
    assert "2.3.1 is not verified" in capsys.readouterr().err
    assert files_in(tmp_path) == before and path.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dry-run"], "--dry-run only means something with --advance or --rollback"),
        (["--alertmanager", "http://x"], "--alertmanager only means something with --advance"),
        (
            ["--rollback", "--alertmanager", "http://x"],
            "--alertmanager only means something with --advance",
        ),
        (["--advance", "--rollback"], "--advance and --rollback are two different changes"),
    ],
)
def test_a_flag_that_means_nothing_in_its_mode_is_refused_before_anything_runs(
    tmp_path, capsys, args, message
):
    copy_of_prod(tmp_path, wave=0, verified=False)
    before = files_in(tmp_path)
    assert tool.main(["--stack", "prod", "--root", str(tmp_path), *args], environ={}) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and err.count("\n") == 1
    assert files_in(tmp_path) == before


def test_alertmanager_from_the_environment_is_not_a_flag_and_the_plan_ignores_it(tmp_path):
    copy_of_prod(tmp_path, wave=0, verified=False)
    environ = {gate.ALERTMANAGER_ENV: "not-a-url"}
    assert tool.main(["--stack", "prod", "--root", str(tmp_path)], environ=environ) == 0


def test_later_waves_without_an_alertmanager_url_are_a_usage_error(tmp_path, capsys):
    copy_of_prod(tmp_path, wave=2)
    soaked = lambda: gate.Applied(2, "2.3.1", LONG_AGO)  # noqa: E731
    args = ["--stack", "prod", "--root", str(tmp_path), "--advance"]
    assert tool.main(args, environ={}, applied=soaked) == 2
    assert "ALERTMANAGER_URL" in capsys.readouterr().err


LONG_AGO = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


NOW = datetime.datetime(2026, 11, 29, 12, 0, tzinfo=datetime.UTC)


def test_a_wave_advances_only_once_applied_and_soaked():
    """The gate's own rule: the stack runs what the file releases, for soakMinutes since."""
    plan = release_plan(tool.load_config((ROOT / "Pulumi.prod.yaml").read_text()))
    version, wave = plan.version, plan.current
    not_applied = gate.Applied(wave - 1, version, LONG_AGO)
    assert gate.refusal_until_soaked(plan, not_applied, 30, NOW).startswith(
        f"the stack file releases wave {wave} of {version}, but the stack runs wave {wave - 1}"
    )
    fresh = gate.Applied(wave, version, NOW - datetime.timedelta(minutes=12))
    assert gate.refusal_until_soaked(plan, fresh, 30, NOW) == (
        f"wave {wave} has soaked 12 of 30 minutes since it was applied; advance after "
        "2026-11-29 12:18 UTC"
    )
    soaked = gate.Applied(wave, version, NOW - datetime.timedelta(minutes=31))
    assert gate.refusal_until_soaked(plan, soaked, 30, NOW) is None


def test_advancing_a_wave_that_is_not_applied_is_refused_and_writes_nothing(tmp_path, capsys):
    path = copy_of_prod(tmp_path, wave=2)
    refusal = refused_advance(path, gate.Applied(1, "2.3.1", LONG_AGO), capsys)
    assert "run `pulumi up` first" in refusal


def test_setting_the_wave_changes_that_token_and_no_other_byte():
    text = (ROOT / "Pulumi.prod.yaml").read_text()
    changed = tool.with_wave(text, 3)
    diff = [
        line for line in difflib.ndiff(text.splitlines(), changed.splitlines()) if line[:1] in "+-"
    ]
    assert diff == ["-     wave: 4", "+     wave: 3"]


def test_a_release_without_a_wave_key_gets_one_at_its_indentation():
    text = (
        "# top\nconfig:\n  hybrid-infra:release:\n    version: '2'  # new\n"
        "    previousVersion: '1'\n  other: 1\n"
    )
    changed = tool.with_wave(text, 1)
    assert changed == (
        "# top\nconfig:\n  hybrid-infra:release:\n    version: '2'  # new\n"
        "    previousVersion: '1'\n    wave: 1\n  other: 1\n"
    )


def test_the_alert_matcher_names_exactly_the_given_prods():
    assert alert_matcher(["C-2", "C-1"]) == f'{ALERT_LABEL}=~"C\\-1|C\\-2"'


@pytest.mark.parametrize("wave", [0, 10, 123])
def test_wave_numbers_of_any_width_replace_the_old_token_whole(wave):
    text = copy_text(wave=7)
    changed = tool.with_wave(text, wave)
    assert yaml.safe_load(changed)["config"]["hybrid-infra:release"]["wave"] == wave
    assert len(changed) == len(text) + len(str(wave)) - 1


# --- rollback as a routing switch ------------------------------------------------------------


def test_a_rollback_that_fits_nowhere_names_the_segment_and_the_roomiest_prod(tmp_path, capsys):
    """At wave 3 enterprise (A-2 + B-1) must leave for A-1 and B-2, which have 1200 and 2100
    users of spare room: too little, and the stack file keeps every byte."""
    path = copy_of_prod(tmp_path, wave=3)
    before = files_in(tmp_path)
    assert tool.main(["--stack", "prod", "--root", str(tmp_path), "--rollback"]) == 1
    assert capsys.readouterr().err == (
        "refused: segment enterprise (4200 users, on A-2, B-1) fits on no Prod that runs 2.3.0: "
        "the most spare room is 2100 users, on B-2. Raise a Prod's capacity, or roll back with "
        "release.wave\n"
    )
    assert files_in(tmp_path) == before and path.exists()


def test_as_shipped_a_rollback_is_refused_because_no_prod_runs_the_previous_version(capsys):
    """Wave 4 of 4: every Prod runs 2.3.1. That, not spare room, is why there is no rollback."""
    before = files_in(ROOT)
    assert tool.main(["--stack", "prod", "--rollback", "--dry-run"]) == 1
    assert capsys.readouterr().err == (
        "refused: no Prod runs 2.3.0 any more: at wave 4 of 4 all 6 Prods run 2.3.1, so there "
        "is no Prod to move users to. Roll back with release.wave: set it lower, and `pulumi up` "
        "redeploys the Prods of the later waves with 2.3.0\n"
    )
    assert files_in(ROOT) == before


def prod_at(wave: int, **changes: dict) -> StackConfig:
    """The prod stack's values at `wave`, clusters or Prods changed (`A={"drained": True}`,
    `A_1={"capacity": 1}`), without the rules across keys: a drain here may strand segments,
    which `parse` would refuse before any rollback."""
    raw = raw_of("prod")
    raw["release"]["wave"] = wave
    for name, change in changes.items():
        raw["prods" if "_" in name else "clusters"][name.replace("_", "-")].update(change)
    return parse_keys(raw)


def test_prods_on_the_previous_version_that_take_no_users_are_named_as_the_reason():
    with pytest.raises(RollbackRefused) as refused:
        rollback(prod_at(3, A={"drained": True}, B={"drained": True}))
    assert str(refused.value) == (
        "the Prods that still run 2.3.0 take no users: A-1 (cluster A is drained), B-2 (cluster "
        "B is drained). Roll back with release.wave, or undrain a cluster"
    )


def test_a_redundant_segment_with_no_previous_prod_on_another_cluster_says_so():
    """At wave 3 with B drained, enterprise's two Prods need 2.3.0 Prods on two clusters, and
    the only one left that takes users, A-1 (given the room for it), is on A."""
    with pytest.raises(RollbackRefused) as refused:
        rollback(prod_at(3, B={"drained": True}, A_1={"capacity": 14000}))
    assert str(refused.value).startswith(
        "segment enterprise (4200 users, on A-2, B-1) needs a second Prod on another cluster "
        "than A, and every Prod that runs 2.3.0 and takes users (A-1) is on it"
    )


def test_only_the_latest_waves_prods_warm_up_and_only_while_the_version_changes():
    raw = raw_of("prod")
    for wave, warming in [(0, ()), (1, ("C-2",)), (2, ("C-1",)), (4, ("A-1", "B-2"))]:
        raw["release"]["wave"] = wave
        assert sorted(release_plan(parse(raw)).warming()) == sorted(warming), wave
    raw["release"]["previousVersion"] = raw["release"]["version"]
    assert release_plan(parse(raw)).warming() == ()
