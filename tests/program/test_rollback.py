"""Rollback as a routing switch, in the program (mocks: the program's shape): segments move off the
new version and only the proxies change."""

from model.stackfile import ROOT
from tools.release import waves as tool
from tools.synth import snapshot, stack_config, synthesize
from tools.synth.diff import diff

# --- rollback as a routing switch ------------------------------------------------------------


def test_rollback_moves_segments_off_the_new_version_and_changes_only_the_proxies(tmp_path):
    """At wave 2 (C-2 and C-1 run 2.3.1), a rollback sends trial and staff to Prods on 2.3.0,
    by room, and the stack file it writes changes no Prod: only the edge proxies' and routing
    configuration (what `pulumi up` then applies, in seconds)."""
    text = (ROOT / "Pulumi.prod.yaml").read_text().replace("    wave: 4\n", "    wave: 2\n")
    (tmp_path / "Pulumi.prod.yaml").write_text(text)

    def synth() -> dict:
        config, secret_keys = stack_config("prod", tmp_path)
        return snapshot.snapshot(synthesize("prod", config=config, secret_keys=secret_keys))

    before = synth()
    assert tool.main(["--stack", "prod", "--root", str(tmp_path), "--rollback"]) == 0
    after_text = (tmp_path / "Pulumi.prod.yaml").read_text()
    changed_lines = [
        (a, b) for a, b in zip(text.splitlines(), after_text.splitlines(), strict=True) if a != b
    ]
    assert changed_lines == [
        (
            "    - {name: staff, users: 40, prods: [C-2]}",
            "    - {name: staff, users: 40, prods: [B-1]}",
        ),
        (
            "    - {name: trial, users: 900, prods: [C-1]}",
            "    - {name: trial, users: 900, prods: [B-2]}",
        ),
    ]
    after = synth()
    changes = diff(before, after)
    assert not changes.added and not changes.removed
    proxies = [c for c in changes.changed if "edge-proxy" in c.name or c.name.endswith("-routing")]
    assert {c.name for c in proxies} >= {"A-edge-proxy", "B-edge-proxy", "C-edge-proxy"}
    # Prods may change labels (a Prod's wave follows its segments), never their Pods.
    for change in set(changes.changed) - set(proxies):
        assert all(c.path.startswith("inputs.metadata.labels.") for c in change.changes), change
