"""The node-pool drain, pure: planner properties (hypothesis), the poll helper of its waits, and
the provider's checks of its inputs."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from providers.node_pool_drain.planner import (
    MAX_NAMED_PODS,
    Pod,
    Skip,
    backoff_seconds,
    describe_pods,
    due,
    plan_drain,
    progress,
    readiness,
    skip_reason,
    to_cordon,
)
from providers.node_pool_drain.provider import (
    NodePoolDrainProvider,
)
from providers.node_pool_drain.wait import wait_for
from tests.support.drain import NEW, FakeClock, nodes, props

# --- planner properties -------------------------------------------------------------------------


names = st.builds(
    lambda stem, n: f"{stem}-{n}", st.sampled_from(["web", "api", "log", "job"]), st.integers(0, 99)
)


pods = st.lists(
    st.builds(
        Pod,
        namespace=st.sampled_from(["shop", "kube-system", "batch"]),
        name=names,
        node=st.sampled_from(["n1", "n2", "n3"]),
        controller_kind=st.sampled_from([None, "ReplicaSet", "DaemonSet", "StatefulSet", "Job"]),
        mirror=st.booleans(),
        terminating=st.booleans(),
    ),
    unique_by=lambda p: p.key,
    max_size=30,
)


@given(pods)
def test_daemonset_and_mirror_pods_are_never_evicted(listed):
    plan = plan_drain(listed)
    assert not any(p.mirror or p.controller_kind == "DaemonSet" for p in plan.blocking)
    skipped = {p.key: reason for p, reason in plan.skipped}
    for pod in listed:
        if pod.mirror:
            assert skipped[pod.key] is Skip.MIRROR
        elif pod.controller_kind == "DaemonSet":
            assert skipped[pod.key] is Skip.DAEMONSET


@given(pods)
def test_every_pod_lands_in_exactly_one_bucket(listed):
    plan = plan_drain(listed)
    buckets = [p.key for p in plan.evict] + [p.key for p in plan.terminating]
    buckets += [p.key for p, _ in plan.skipped]
    assert sorted(buckets) == sorted(p.key for p in listed)
    assert not any(p.terminating for p in plan.evict)


@given(pods)
def test_drain_is_done_only_when_no_evictable_pod_is_left(listed):
    plan = plan_drain(listed)
    assert plan.done == all(skip_reason(p) is not None for p in listed)


@given(pods)
def test_evicting_the_plan_then_waiting_converges_and_counts_everything(listed):
    seen: set[str] = set()
    current = list(listed)
    for _ in range(3):
        plan = plan_drain(current)
        seen |= {p.key for p in plan.blocking}
        report = progress("pool", seen, plan)
        assert 0 <= report.evicted <= report.total == len(seen)
        if plan.done:
            break
        evicted = {p.key for p in plan.evict}
        current = [
            Pod(p.namespace, p.name, p.node, p.controller_kind, p.mirror, terminating=True)
            if p.key in evicted
            else p
            for p in current
            if not (p.terminating and skip_reason(p) is None)
        ]
    assert plan.done
    assert report.evicted == report.total


@given(st.integers(0, 60), st.integers(0, 60), st.floats(0.01, 10), st.floats(0.01, 600))
def test_backoff_grows_with_refusals_and_never_passes_the_cap(a, b, base, cap):
    low, high = sorted((a, b))
    assert backoff_seconds(low, base=base, cap=cap) <= backoff_seconds(high, base=base, cap=cap)
    assert backoff_seconds(high, base=base, cap=cap) <= cap
    assert backoff_seconds(1, base=base, cap=cap) == min(base, cap)


@given(
    pods,
    st.dictionaries(st.sampled_from(["shop/a-1", "shop/b-2"]), st.floats(0, 100)),
    st.floats(0, 100),
)
def test_a_pod_in_backoff_is_not_due(listed, not_before, now):
    ready = due(listed, not_before, now)
    assert all(not_before.get(p.key, 0) <= now for p in ready)
    assert {p.key for p in ready} == {
        p.key for p in listed if p.key not in not_before or not_before[p.key] <= now
    }


@given(nodes, st.integers(1, 12))
def test_readiness_is_done_iff_enough_nodes_are_ready(listed, wanted):
    state = readiness("pool", listed, wanted)
    assert state.done == (sum(n.ready for n in listed) >= wanted)
    assert state.registered == len(listed)


@given(nodes)
def test_only_schedulable_nodes_are_cordoned(listed):
    assert set(to_cordon(listed)) == {n.name for n in listed if not n.unschedulable}


def test_error_text_names_at_most_twenty_pods_and_counts_the_rest():
    many = [Pod("shop", f"web-{i:02}", "n1") for i in range(MAX_NAMED_PODS + 5)]
    text = describe_pods(many, {"shop/web-00": "budget web needs 2"})
    assert text.startswith("shop/web-00 (budget web needs 2), shop/web-01 (not evicted)")
    assert text.endswith("and 5 more")
    assert "web-20" not in text


@given(pods, st.sets(st.sampled_from(["shop/web-1", "shop/api-2", "batch/job-3"])))
def test_only_pods_still_to_evict_count_as_held_back_by_a_budget(listed, refused_keys):
    plan = plan_drain(listed)
    refused = dict.fromkeys(refused_keys, "budget says no")
    report = progress("pool", {p.key for p in plan.blocking}, plan, refused)
    held = {p.key for p in plan.evict} & refused_keys
    assert report.held == len(held)
    assert ("held back by a PodDisruptionBudget" in report.summary()) == bool(held)
    if held:
        assert report.example == f"{min(held)}: budget says no"


# --- the poll helper both waits go through -------------------------------------------------------


@dataclass(frozen=True)
class Count:
    n: int

    def summary(self) -> str:
        return f"count {self.n}"


class Counting:
    """Looks that go 0, 0, 1, 1, 2, ... and note what happened between them."""

    def __init__(self) -> None:
        self.looks = 0
        self.between: list[float] = []

    def look(self) -> Count:
        self.looks += 1
        return Count((self.looks - 1) // 2)


def test_the_wait_reports_progress_only_when_it_changed_and_returns_the_done_look():
    clock, seen, lines = FakeClock(), Counting(), []
    done = wait_for(
        seen.look,
        lambda c: c.n == 3,
        interval=1,
        wait=60,
        timed_out=lambda c: AssertionError(c),
        callback=lines.append,
        between=seen.between.append,
        clock=clock,
        sleep=clock.sleep,
    )
    assert done == Count(3) and seen.looks == 7
    assert lines == ["count 0", "count 1", "count 2", "count 3"]
    assert seen.between == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0], "acts after each look not done"


def test_the_wait_raises_what_the_last_look_makes_at_the_deadline_without_overshooting():
    clock, seen = FakeClock(), Counting()
    with pytest.raises(TimeoutError, match=r"^count 1$"):
        wait_for(
            seen.look,
            lambda c: False,
            interval=2,
            wait=5,
            timed_out=lambda c: TimeoutError(c.summary()),
            callback=lambda _: None,
            clock=clock,
            sleep=clock.sleep,
        )
    assert clock.now == 5.0, "the last sleep stops at the deadline"
    assert seen.looks == 4, "looks at 0, 2, 4 and at the deadline, 5"


# --- the provider ---------------------------------------------------------------------------------


def test_a_new_pool_replaces_the_drain_and_nothing_deletes_first():
    provider = NodePoolDrainProvider()
    old = props("kc")
    moved = provider.diff("drain", old, props("kc", pool_name=NEW))
    assert (moved.changes, moved.replaces, moved.delete_before_replace) == (
        True,
        ["pool_name"],
        False,
    )
    slower = provider.diff("drain", old, props("kc", drain_timeout_seconds=3600))
    assert (slower.changes, slower.replaces) == (True, [])
    assert provider.diff("drain", old, props("kc")).changes is False


def test_check_names_each_bad_input():
    result = NodePoolDrainProvider().check(
        {}, props("kc", pool_name="", min_ready_nodes=0, drain_timeout_seconds=-1)
    )
    assert sorted(f.property for f in result.failures) == [
        "drain_timeout_seconds",
        "min_ready_nodes",
        "pool_name",
    ]
