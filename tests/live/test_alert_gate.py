"""`tools.release.waves --advance` against a real Alertmanager and a real Prometheus: a wave goes
out only while no alert fires on a Prod that already runs the new version and Prometheus holds
those Prods' alert rules and samples (otherwise the gate is blind), and the stack file keeps
every comment."""

import datetime
import difflib
from collections.abc import Sequence
from pathlib import Path

import pytest

from model.config import AppAlerts
from model.prod_alerts import samples_query
from model.release import ALERT_LABEL, release_plan
from model.stackfile import ROOT
from tests.fixtures.prometheus import Prometheus
from tools.release import gate
from tools.release import waves as tool
from tools.verify.report import Row, fail, ok

# At wave 2, C-2 (test) and C-1 run the new version; A-2 and B-1 are next.
UPDATED = ("C-2", "C-1")
# What an app's Pods serve: its requests, which the Prod's PodMonitor labels with the Prod.
REQUESTS = ('http_requests_total{code="200"} 1200', 'http_requests_total{code="500"} 3')


def stack_at_wave_2(tmp_path: Path) -> Path:
    text = (ROOT / "Pulumi.prod.yaml").read_text()
    assert "    wave: 4\n" in text
    path = tmp_path / "Pulumi.prod.yaml"
    path.write_text(text.replace("    wave: 4\n", "    wave: 2\n"))
    return path


def applied_and_soaked(tmp_path: Path) -> gate.Applied:
    """The stack's backend as `pulumi stack output/history` would report it: the stack file's
    released waves, applied two hours ago (the gate's own test is in tests/unit/test_waves.py)."""
    plan = release_plan(tool.load_config((tmp_path / "Pulumi.prod.yaml").read_text()))
    two_hours_ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=2)
    return gate.Applied(plan.current, plan.version, two_hours_ago)


@pytest.fixture
def watched(prometheus: Prometheus) -> Prometheus:
    """Prometheus evaluating the updated Prods' rules and scraping their requests."""
    prometheus.load_rules(UPDATED)
    prometheus.serve({prod: REQUESTS for prod in UPDATED})
    return prometheus


def verified_green(prods: Sequence[str]) -> list[Row]:
    """`tools.verify` as it reports on a platform where each released Prod runs the release
    (verify itself runs against real servers in tests/live/test_verify_live.py and _kube.py)."""
    return [ok("prod", prod, "Available 3/3 at 2.3.1") for prod in prods]


def advance(
    tmp_path: Path, url: str, *prometheus: str, verified: gate.VerifySource = verified_green
) -> int:
    args = ["--stack", "prod", "--root", str(tmp_path), "--advance", "--alertmanager", url]
    return tool.main(
        [*args, *(a for p in prometheus for a in ("--prometheus", p))],
        environ={},
        applied=lambda: applied_and_soaked(tmp_path),
        verified=verified,
    )


def wave_in(path: Path) -> int:
    return release_plan(tool.load_config(path.read_text())).current


def test_advance_is_refused_while_an_alert_fires_on_an_updated_prod(
    alertmanager, watched, tmp_path, capsys
):
    path = stack_at_wave_2(tmp_path)
    before = path.read_text()
    alertmanager.post(
        {"alertname": "HighErrorRate", ALERT_LABEL: "C-1", "severity": "page"},
        {"alertname": "SlowStart", ALERT_LABEL: "A-1"},
    )
    assert advance(tmp_path, alertmanager.url, watched.url) == 1
    err = capsys.readouterr().err
    assert "1 alert(s) fire on Prods that run 2.3.1: HighErrorRate on C-1" in err
    assert "SlowStart" not in err
    assert path.read_text() == before


def test_advance_goes_ahead_when_alerts_fire_only_on_prods_not_yet_updated(
    alertmanager, watched, tmp_path, capsys
):
    path = stack_at_wave_2(tmp_path)
    alertmanager.post(
        {"alertname": "HighErrorRate", ALERT_LABEL: "A-1"},
        {"alertname": "DiskFull", ALERT_LABEL: "B-2"},
        {"alertname": "NoProdLabel"},
    )
    assert advance(tmp_path, alertmanager.url, watched.url) == 0
    out = capsys.readouterr().out
    assert "release.wave 2 → 3" in out
    assert "Prometheus has their rules and samples, and verify is green for them" in out
    assert wave_in(path) == 3


def test_advance_is_refused_while_verify_is_not_green_for_an_updated_prod(
    alertmanager, watched, tmp_path, capsys
):
    path = stack_at_wave_2(tmp_path)
    before = path.read_text()
    asked: list[Sequence[str]] = []

    def c1_on_the_old_version(prods: Sequence[str]) -> list[Row]:
        asked.append(prods)
        rows = verified_green(prods)
        rows[1] = fail("prod", "C-1", "runs 2.3.0, the release plan says 2.3.1")
        return [*rows, fail("routing", "A trial", "reached A-1, but the routing table names C-1")]

    assert advance(tmp_path, alertmanager.url, watched.url, verified=c1_on_the_old_version) == 1
    assert [tuple(a) for a in asked] == [UPDATED]  # the released waves' Prods, no other
    err = capsys.readouterr().err
    assert "verify is not green for the released waves (C-2, C-1):" in err
    assert "  FAIL prod C-1: runs 2.3.0, the release plan says 2.3.1" in err
    assert "  FAIL routing A trial: reached A-1, but the routing table names C-1" in err
    assert path.read_text() == before


def test_a_verify_that_did_not_find_a_released_prod_is_not_green(
    alertmanager, watched, tmp_path, capsys
):
    path = stack_at_wave_2(tmp_path)
    only_c2 = lambda prods: verified_green(["C-2"])  # noqa: E731
    assert advance(tmp_path, alertmanager.url, watched.url, verified=only_c2) == 1
    assert "not checked: prod C-1 (verify found no Deployment of it to check)" in (
        capsys.readouterr().err
    )
    assert wave_in(path) == 2


def test_the_stack_file_keeps_its_comments_and_layout_after_the_bump(
    alertmanager, watched, tmp_path
):
    path = stack_at_wave_2(tmp_path)
    before = path.read_text()
    assert advance(tmp_path, alertmanager.url, watched.url) == 0
    after = path.read_text()
    changed = [
        line for line in difflib.ndiff(before.splitlines(), after.splitlines()) if line[:1] in "+-"
    ]
    assert changed == ["-     wave: 2", "+     wave: 3"]
    comments = [line for line in before.splitlines() if line.lstrip().startswith("#")]
    assert comments and all(c in after.splitlines() for c in comments)


def test_a_silenced_alert_does_not_hold_the_wave(alertmanager, watched, tmp_path):
    path = stack_at_wave_2(tmp_path)
    alertmanager.post({"alertname": "KnownFlake", ALERT_LABEL: "C-2"})
    alertmanager.silence({"alertname": "KnownFlake"})
    assert advance(tmp_path, alertmanager.url, watched.url) == 0
    assert wave_in(path) == 3


def test_alertmanager_filters_by_the_updated_prods_matcher(alertmanager):
    alertmanager.post(
        {"alertname": "A", ALERT_LABEL: "C-2"},
        {"alertname": "B", ALERT_LABEL: "C-1"},
        {"alertname": "C", ALERT_LABEL: "C-10"},
        {"alertname": "D", ALERT_LABEL: "A-1"},
    )
    # The server applies the matcher: a regex that matched too much (C-10) or too little
    # would show here, not behind the gate's own re-check.
    found = gate.fetch_alerts(alertmanager.url, UPDATED)
    assert sorted(a["labels"]["alertname"] for a in found) == ["A", "B"]


def test_an_unreachable_alertmanager_refuses_rather_than_assumes_quiet(watched, tmp_path, capsys):
    path = stack_at_wave_2(tmp_path)
    before = path.read_text()
    assert advance(tmp_path, "http://127.0.0.1:9", watched.url) == 1
    assert "cannot read alerts from http://127.0.0.1:9" in capsys.readouterr().err
    assert path.read_text() == before


# --- the gate is never blind ------------------------------------------------------------------


def test_advance_is_refused_while_an_updated_prod_has_no_samples(
    alertmanager, prometheus, tmp_path, capsys
):
    """C-1's rules are loaded but nothing of it is scraped (C-10, a name that shares its prefix,
    is): no alert can fire for C-1, so Alertmanager's silence about it proves nothing."""
    path = stack_at_wave_2(tmp_path)
    before = path.read_text()
    prometheus.load_rules(UPDATED)
    prometheus.serve({"C-2": REQUESTS, "C-10": REQUESTS})
    assert advance(tmp_path, alertmanager.url, prometheus.url) == 1
    err = capsys.readouterr().err
    assert err.startswith(
        "refused: gate blind: no samples for prod C-1 "
        '(http_requests_total{hybrid_infra_prod="C-1"} has no series now)\n'
    )
    assert "prod C-2" not in err
    assert path.read_text() == before


def test_advance_is_refused_while_the_rules_of_an_updated_prod_are_not_loaded(
    alertmanager, prometheus, tmp_path, capsys
):
    """Samples without rules are as blind: nothing evaluates them (a PrometheusRule that the
    cluster's Prometheus does not select looks exactly like this)."""
    path = stack_at_wave_2(tmp_path)
    before = path.read_text()
    prometheus.load_rules(["C-1"])
    prometheus.serve({prod: REQUESTS for prod in UPDATED})
    assert advance(tmp_path, alertmanager.url, prometheus.url) == 1
    err = capsys.readouterr().err
    assert "gate blind: no alert rules for prod C-2" in err
    assert "prod C-1" not in err
    assert path.read_text() == before


def test_a_prod_that_stopped_being_scraped_is_blind_at_once(
    alertmanager, watched, tmp_path, capsys
):
    """Prometheus marks a series that left its target stale; the gate reads samples now, not
    the last five minutes of history."""
    stack_at_wave_2(tmp_path)
    watched.serve({"C-2": REQUESTS})
    assert advance(tmp_path, alertmanager.url, watched.url) == 1
    assert "gate blind: no samples for prod C-1" in capsys.readouterr().err


def test_the_samples_query_counts_each_asked_prod_and_no_other(watched):
    """Prometheus applies the matcher: one that took C-10 for C-1 would show here."""
    watched.serve({"C-1": REQUESTS, "C-10": REQUESTS, "A-1": REQUESTS})
    answer = watched.query(samples_query(["C-1", "C-2"], AppAlerts()))
    assert [(s["metric"], s["value"][1]) for s in answer] == [({ALERT_LABEL: "C-1"}, "2")]
    with_rules, with_samples = gate.fetch_watched([watched.url], ["C-1", "C-2"], AppAlerts())
    assert (with_rules, with_samples) == ({"C-1", "C-2"}, {"C-1"})


def test_an_unreachable_prometheus_refuses_rather_than_assumes_data(alertmanager, tmp_path, capsys):
    path = stack_at_wave_2(tmp_path)
    before = path.read_text()
    assert advance(tmp_path, alertmanager.url, "http://127.0.0.1:9") == 1
    assert "cannot read Prometheus at http://127.0.0.1:9" in capsys.readouterr().err
    assert path.read_text() == before


def test_without_a_prometheus_url_a_later_wave_is_a_usage_error(alertmanager, tmp_path, capsys):
    path = stack_at_wave_2(tmp_path)
    before = path.read_text()
    assert advance(tmp_path, alertmanager.url) == 2
    err = capsys.readouterr().err
    assert "give --prometheus URL (or set PROMETHEUS_URL)" in err
    assert path.read_text() == before


def test_prometheus_url_from_the_environment(alertmanager, watched, tmp_path):
    path = stack_at_wave_2(tmp_path)
    args = ["--stack", "prod", "--root", str(tmp_path), "--advance"]
    environ = {"ALERTMANAGER_URL": alertmanager.url, "PROMETHEUS_URL": watched.url}
    soaked = lambda: applied_and_soaked(tmp_path)  # noqa: E731
    assert tool.main(args, environ=environ, applied=soaked, verified=verified_green) == 0
    assert wave_in(path) == 3


def test_a_prometheus_given_without_a_scheme_is_a_usage_error(tmp_path, capsys):
    stack_at_wave_2(tmp_path)
    args = ["--stack", "prod", "--root", str(tmp_path), "--advance"]
    assert tool.main([*args, "--prometheus", "prometheus:9090"], environ={}) == 2
    err = capsys.readouterr().err
    assert err == "error: --prometheus prometheus:9090: give a URL, e.g. http://prometheus:9090\n"
