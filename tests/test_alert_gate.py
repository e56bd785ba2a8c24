"""`tools.release.waves --advance` against a real Alertmanager: a wave goes out only while no alert
fires on a Prod that already runs the new version, and the stack file keeps every comment."""

import datetime
import difflib
from pathlib import Path

from model.release import ALERT_LABEL, release_plan
from model.stackfile import ROOT
from tools.release import gate
from tools.release import waves as tool

# At wave 2, C-2 (test) and C-1 run the new version; A-2 and B-1 are next.
UPDATED = ("C-2", "C-1")


def stack_at_wave_2(tmp_path: Path) -> Path:
    text = (ROOT / "Pulumi.prod.yaml").read_text()
    assert "    wave: 4\n" in text
    path = tmp_path / "Pulumi.prod.yaml"
    path.write_text(text.replace("    wave: 4\n", "    wave: 2\n"))
    return path


def applied_and_soaked(tmp_path: Path) -> gate.Applied:
    """The stack's backend as `pulumi stack output/history` would report it: the stack file's
    released waves, applied two hours ago (the gate's own test is in tests/test_waves.py)."""
    plan = release_plan(tool.load_config((tmp_path / "Pulumi.prod.yaml").read_text()))
    two_hours_ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=2)
    return gate.Applied(plan.current, plan.version, two_hours_ago)


def advance(tmp_path: Path, url: str) -> int:
    return tool.main(
        ["--stack", "prod", "--root", str(tmp_path), "--advance", "--alertmanager", url],
        environ={},
        applied=lambda: applied_and_soaked(tmp_path),
    )


def wave_in(path: Path) -> int:
    return release_plan(tool.load_config(path.read_text())).current


def test_advance_is_refused_while_an_alert_fires_on_an_updated_prod(alertmanager, tmp_path, capsys):
    path = stack_at_wave_2(tmp_path)
    before = path.read_text()
    alertmanager.post(
        {"alertname": "HighErrorRate", ALERT_LABEL: "C-1", "severity": "page"},
        {"alertname": "SlowStart", ALERT_LABEL: "A-1"},
    )
    assert advance(tmp_path, alertmanager.url) == 1
    err = capsys.readouterr().err
    assert "1 alert(s) fire on Prods that run 2.3.1: HighErrorRate on C-1" in err
    assert "SlowStart" not in err
    assert path.read_text() == before


def test_advance_goes_ahead_when_alerts_fire_only_on_prods_not_yet_updated(
    alertmanager, tmp_path, capsys
):
    path = stack_at_wave_2(tmp_path)
    alertmanager.post(
        {"alertname": "HighErrorRate", ALERT_LABEL: "A-1"},
        {"alertname": "DiskFull", ALERT_LABEL: "B-2"},
        {"alertname": "NoProdLabel"},
    )
    assert advance(tmp_path, alertmanager.url) == 0
    assert "release.wave 2 → 3" in capsys.readouterr().out
    assert wave_in(path) == 3


def test_the_stack_file_keeps_its_comments_and_layout_after_the_bump(alertmanager, tmp_path):
    path = stack_at_wave_2(tmp_path)
    before = path.read_text()
    assert advance(tmp_path, alertmanager.url) == 0
    after = path.read_text()
    changed = [
        line for line in difflib.ndiff(before.splitlines(), after.splitlines()) if line[:1] in "+-"
    ]
    assert changed == ["-     wave: 2", "+     wave: 3"]
    comments = [line for line in before.splitlines() if line.lstrip().startswith("#")]
    assert comments and all(c in after.splitlines() for c in comments)


def test_a_silenced_alert_does_not_hold_the_wave(alertmanager, tmp_path):
    path = stack_at_wave_2(tmp_path)
    alertmanager.post({"alertname": "KnownFlake", ALERT_LABEL: "C-2"})
    alertmanager.silence({"alertname": "KnownFlake"})
    assert advance(tmp_path, alertmanager.url) == 0
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


def test_an_unreachable_alertmanager_refuses_rather_than_assumes_quiet(tmp_path, capsys):
    path = stack_at_wave_2(tmp_path)
    before = path.read_text()
    assert advance(tmp_path, "http://127.0.0.1:9") == 1
    assert "cannot read alerts from http://127.0.0.1:9" in capsys.readouterr().err
    assert path.read_text() == before
