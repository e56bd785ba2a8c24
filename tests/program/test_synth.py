"""The credential-free preview (`python -m tools.synth`) and the golden snapshots.

Golden snapshots: tests/snapshots/<stack>.json hold what each stack file declares. When the
program's output changes on purpose, rewrite them and commit the JSON diff with the change:

    uv run python -m tools.synth --update-snapshots

The command runs in-process here (`tools.synth.cli.main`): a subprocess would pay the provider SDK
imports again for every call.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from model.stackfile import ROOT
from tests.fixtures.program import synth_with
from tests.support.synthesis import (
    CONFIGMAP,
    DEPLOYMENT,
    EKS_CLUSTER,
    HYBRID_LB,
    KUBERNETES_PROVIDER,
    LISTENER,
    PROD,
    ROOT_STACK,
    SERVICE,
)
from tools.synth import Registered, Synthesis, cli, graph, snapshot, stack_config, synthesize
from tools.synth.diff import diff, held_back, render_diff
from tools.synth.tree import describe, render_tree

PLAINTEXT = "hunter2-plaintext-s3cret"


def secure_values(path: Path) -> list[str]:
    """The ciphertexts (`secure:`) in a stack file: they must never be printed."""
    document = yaml.safe_load(path.read_text())
    values = document["config"].values()
    return [v["secure"] for v in values if isinstance(v, dict) and set(v) == {"secure"}]


def run_prod(out: Path, stack_root: Path = ROOT) -> tuple[Synthesis, dict[str, str]]:
    """One run of the command for prod (its stack file from `stack_root`) writing every text
    output (tree, JSON, DOT, Mermaid), with the raw synthesis it worked from (to know what the
    secrets were)."""
    paths = {kind: out / f"prod.{kind}" for kind in ("json", "dot", "mmd")}
    tree = out / "tree.txt"
    runs: list[Synthesis] = []
    config, secret_keys = stack_config("prod", stack_root)

    def recording(*args: Any, **kwargs: Any) -> Synthesis:
        runs.append(synthesize(*args, **{**kwargs, "config": config, "secret_keys": secret_keys}))
        return runs[-1]

    with pytest.MonkeyPatch.context() as patch, tree.open("w") as stdout:
        patch.setattr(cli, "synthesize", recording)
        code = cli.main(
            ["--stack", "prod", "--tree", "--json", str(paths["json"])]
            + [arg for kind in ("dot", "mmd") for arg in ("--graph", str(paths[kind]))],
            out=stdout,
        )
    assert code == 0
    texts = {"tree": tree.read_text(), **{kind: p.read_text() for kind, p in paths.items()}}
    return runs[0], texts


@pytest.fixture(scope="module")
def prod_run(tmp_path_factory) -> tuple[Synthesis, dict[str, str]]:
    return run_prod(tmp_path_factory.mktemp("prod"))


@pytest.fixture(scope="module")
def prod_outputs(prod_run) -> dict[str, str]:
    return prod_run[1]


# --- golden snapshots ---------------------------------------------------------------------------


@pytest.mark.parametrize("stack", cli.stacks())
def test_program_output_matches_golden_snapshot(stack):
    path = cli.golden_path(stack)
    current = snapshot.dumps(snapshot.snapshot(synthesize(stack)))
    if not path.is_file():
        pytest.fail(f"{path} is missing; create it with `{cli.UPDATE_COMMAND}`")
    if path.read_text() != current:
        changes = render_diff(diff(snapshot.loads(path.read_text()), json.loads(current)))
        shown = "\n".join(changes.splitlines()[:60])
        pytest.fail(
            f"stack {stack!r} no longer declares what {path.relative_to(ROOT)} records:\n"
            f"{shown}\nIf this change is intended, run `{cli.UPDATE_COMMAND}` and commit the "
            "updated snapshot with it.",
            pytrace=False,
        )


# --- secrets --------------------------------------------------------------------------------------


def test_prod_outputs_never_contain_a_secure_config_value(tmp_path):
    """The shipped prod holds no secret value; a copy holds one, as a stack may."""
    secure = "config:\n  openstack:password:\n    secure: v1:N2a9kW4pQx7rTz1b:Xq8Hf3Lm1Z\n"
    stack_file = tmp_path / "Pulumi.prod.yaml"
    stack_file.write_text((ROOT / "Pulumi.prod.yaml").read_text().replace("config:\n", secure, 1))
    ciphertexts = secure_values(stack_file)
    assert ciphertexts == ["v1:N2a9kW4pQx7rTz1b:Xq8Hf3Lm1Z"]
    _, outputs = run_prod(tmp_path, stack_root=tmp_path)
    for name, text in outputs.items():
        for ciphertext in ciphertexts:
            assert ciphertext not in text, f"{name} shows a secure value"


def test_secret_inputs_are_redacted_in_every_prod_output(prod_run):
    synthesis, outputs = prod_run
    secrets = [
        str(value["value"])
        for r in synthesis.resources
        for value in r.inputs.values()
        if isinstance(value, dict) and value.get(snapshot.SIG_KEY) == snapshot.SECRET_SIG
    ]
    # At least the dynamic providers' serialized code reaches the engine as a secret input.
    # (Mocks resolve some secret outputs to ""; an empty string is "in" any text.)
    # A secure stack value reaches the program as synth's own placeholder, which is the redaction.
    secrets = [s for s in secrets if len(s) >= snapshot.MIN_SCRUB and s != snapshot.SECRET]
    assert secrets
    for name, text in outputs.items():
        for secret in secrets:
            assert str(secret) not in text, f"{name} shows a secret input"
    assert '"__provider": "[secret]"' in outputs["json"]


def _secretive_synthesis() -> Synthesis:
    """A hand-made run with a secret at every depth the views walk, and one in a log line."""
    secret = {snapshot.SIG_KEY: snapshot.SECRET_SIG, "value": PLAINTEXT}
    stack = "urn:pulumi:t::hybrid-infra::pulumi:pulumi:Stack::hybrid-infra-t"
    comp = f"urn:pulumi:t::hybrid-infra::pulumi:pulumi:Stack${HYBRID_LB}::x"
    child = f"urn:pulumi:t::hybrid-infra::{HYBRID_LB}${LISTENER}::l"
    other = f"urn:pulumi:t::hybrid-infra::{HYBRID_LB}$vendor:thing:Thing::th"
    return Synthesis(
        stack="t",
        resources=(
            Registered(HYBRID_LB, "x", comp, stack, {}, False, False, (), None, False),
            Registered(
                LISTENER,
                "l",
                child,
                comp,
                {"port": 443.0, "protocol": secret, "defaultActions": [{"token": secret}]},
                True,
                False,
                (),
                None,
                False,
            ),
            Registered(
                "vendor:thing:Thing",
                "th",
                other,
                comp,
                {"password": secret, "size": 3.0},
                True,
                False,
                (child,),
                None,
                False,
            ),
        ),
        outputs={"nested": {"list": [secret]}},
        logs=(f"info: connecting with {PLAINTEXT}",),
    )


def test_a_secret_at_any_depth_is_redacted_in_tree_json_graph_and_diff():
    snap = snapshot.snapshot(_secretive_synthesis())
    picture = graph.layout(snap)
    empty = {**snap, "resources": {}, "outputs": {}}
    views = {
        "tree": render_tree(snap),
        "json": snapshot.dumps(snap),
        "dot": graph.to_dot(picture),
        "mmd": graph.to_mermaid(picture),
        "diff": render_diff(diff(empty, snap)),
    }
    for name, text in views.items():
        assert PLAINTEXT not in text, f"{name} shows the secret"
    assert "[secret]" in views["tree"] and "[secret]" in views["json"]


# --- tree -----------------------------------------------------------------------------------------


def test_prod_tree_nests_octavia_nlb_sync_and_dns_under_their_hybrid_lb(prod_outputs):
    lines = prod_outputs["tree"].splitlines()
    assert lines[0].startswith("hybrid-infra/prod: ")
    shop = next(i for i, line in enumerate(lines) if line.endswith("HybridLoadBalancer shop"))
    depth = lines[shop].index("HybridLoadBalancer")
    block = []
    for line in lines[shop + 1 :]:
        if re.match(r"^[│ ]*[├└]── ", line) and line.index("── ") + 3 <= depth:
            break
        block.append(line)
    text = "\n".join(block)
    assert "aws:lb:LoadBalancer shop-nlb" in text
    assert "openstack:loadbalancer:LoadBalancer shop-octavia" in text
    assert "dynamic:OctaviaNlbSync shop-sync" in text
    assert "WeightedFailover shop-dns" in text
    assert "api-" not in text


def test_tree_line_shows_key_inputs_and_protection(prod_outputs):
    tree = prod_outputs["tree"]
    assert re.search(r"aws:route53:Record api-dns-nlb  setIdentifier=nlb weight=20 ", tree)
    assert re.search(r"aws:lb:LoadBalancer shop-nlb  .*\[protect\]", tree)


def test_unlisted_types_show_a_few_scalar_inputs():
    tree = render_tree(snapshot.snapshot(_secretive_synthesis()))
    assert "vendor:thing:Thing th  password=[secret] size=3" in tree


# --- json -----------------------------------------------------------------------------------------


def test_a_second_run_writes_identical_json_and_diffs_empty(prod_outputs, tmp_path, capsys):
    first, again = tmp_path / "first.json", tmp_path / "again.json"
    first.write_text(prod_outputs["json"])
    args = ["--stack", "prod", "--json", str(again), "--diff", str(first), "--exit-code"]
    assert cli.main(args) == 0
    assert again.read_bytes() == first.read_bytes()
    assert capsys.readouterr().out.strip().endswith("no changes")


def test_json_is_keyed_by_engine_urn_with_integral_numbers_as_ints(prod_outputs):
    snap = json.loads(prod_outputs["json"])
    urn = (
        "urn:pulumi:prod::hybrid-infra::hybrid-infra:platform:Platform$"
        "hybrid-infra:lb:HybridLoadBalancer$aws:lb/loadBalancer:LoadBalancer::shop-nlb"
    )
    nlb = snap["resources"][urn]
    assert nlb["parent"].endswith("$hybrid-infra:lb:HybridLoadBalancer::shop")
    assert nlb["provider"].endswith("$pulumi:providers:aws::aws")
    listener = next(r for r in snap["resources"].values() if r["name"] == "shop-https")
    assert isinstance(listener["inputs"]["protocolPort"], int)
    assert snap["outputs"]["environment"] == "prod"


def test_unknowns_become_a_marker():
    from pulumi.output import Unknown
    from pulumi.runtime import rpc

    assert snapshot.normalise({"a": [Unknown(), rpc.UNKNOWN, 2.5, 3.0]}) == {
        "a": ["[unknown]", "[unknown]", 2.5, 3]
    }


# --- diff -----------------------------------------------------------------------------------------


def test_diff_catches_a_weight_change_and_exits_non_zero(prod_outputs, tmp_path, capsys):
    def shift_weights(raw: dict[str, Any]) -> None:
        raw["loadBalancers"][1]["dns"]["weights"] = {"octavia": 70, "nlb": 30}

    new = snapshot.snapshot(synth_with(shift_weights))
    (tmp_path / "old.json").write_text(prod_outputs["json"])
    (tmp_path / "new.json").write_text(snapshot.dumps(new))
    files = [str(tmp_path / "old.json"), str(tmp_path / "new.json")]

    assert cli.main(["--diff", *files, "--exit-code"]) == 1
    report = capsys.readouterr().out
    assert (
        "~ aws:route53:Record api-dns-nlb\n    inputs.weightedRoutingPolicies[0].weight: 20 → 30"
        in report
    )
    octavia = "~ aws:route53:Record api-dns-octavia\n    inputs.weightedRoutingPolicies[0].weight"
    assert f"{octavia}: 80 → 70" in report
    assert "0 to add, 2 to change, 0 to remove" in report
    assert cli.main(["--diff", *files]) == 0


def test_diff_reports_added_and_removed_resources():
    snap = snapshot.snapshot(_secretive_synthesis())
    fewer = {**snap, "resources": dict(list(snap["resources"].items())[:2])}
    d = diff(fewer, snap)
    assert [b.record["name"] for b in d.added] == ["th"]
    assert diff(snap, fewer).removed[0].record["name"] == "th"


def record(inputs: dict[str, Any], ignore: list[str] | None = None) -> dict[str, Any]:
    """A snapshot record with only what the diff reads."""
    base = {"type": "kubernetes:core/v1:ConfigMap", "name": "cm", "parent": None}
    base |= {"custom": True, "protect": False, "provider": "p", "dependencies": []}
    base |= {"deleteBeforeReplace": False, "inputs": inputs}
    return base | ({"ignoreChanges": ignore} if ignore else {})


def snap_of(*records: dict[str, Any]) -> dict[str, Any]:
    return {"resources": {f"urn{i}": r for i, r in enumerate(records)}, "outputs": {}}


def test_an_ignored_input_is_held_back_as_the_engine_holds_it_not_changed():
    """The engine resets every `ignoreChanges` path of the new inputs to the old value (or
    drops it where the old had none) before it diffs; `*` is every input."""
    old = {"data": {"k": "v1"}, "metadata": {"name": "a", "labels": {"x": "1"}}}
    new = {"data": {"k": "v2"}, "metadata": {"name": "b", "labels": {"x": "1"}}, "immutable": True}
    frozen = diff(snap_of(record(old)), snap_of(record(new, ["*"])))
    assert frozen.empty and not frozen.changed
    (held,) = frozen.held
    assert {c.path for c in held.changes} == {
        "inputs.data.k",
        "inputs.metadata.name",
        "inputs.immutable",
    }
    assert render_diff(frozen).endswith("no changes; 1 held back by ignoreChanges\n")
    assert "= kubernetes:core:ConfigMap cm  (held back by ignoreChanges)" in render_diff(frozen)

    one_path = diff(snap_of(record(old)), snap_of(record(new, ["metadata.name"])))
    ((changed,), (held,)) = one_path.changed, one_path.held
    assert {c.path for c in changed.changes} == {"inputs.data.k", "inputs.immutable"}
    assert [c.path for c in held.changes] == ["inputs.metadata.name"]
    # Without ignoreChanges every change is a change, and the option itself is none.
    plain = diff(snap_of(record(old, ["*"])), snap_of(record(new)))
    assert len(plain.changed[0].changes) == 3 and not plain.held


def test_held_back_follows_the_engines_wildcards_and_leaves_array_paths_alone():
    old = {"spec": {"a": {"n": 1}, "b": {"n": 2}}, "list": [1]}
    new = {"spec": {"a": {"n": 9}, "b": {"n": 9}, "c": {"n": 9}}, "list": [2]}
    assert held_back(old, new, ["spec.*.n"]) == {
        "spec": {"a": {"n": 1}, "b": {"n": 2}, "c": {"n": 9}},
        "list": [2],
    }
    assert held_back(old, new, ["list[0]"]) == new
    assert held_back(old, new, ["*"]) == old


def test_the_tree_marks_a_frozen_resource():
    assert describe(record({}, ["*"])).endswith("[frozen]")
    assert "[frozen]" not in describe(record({}, ["scalingConfig.desiredSize"]))


# --- errors ---------------------------------------------------------------------------------------


def test_config_error_prints_every_key_path_and_exits_2_without_traceback(tmp_path, capsys):
    document = yaml.safe_load((ROOT / "Pulumi.prod.yaml").read_text())
    lbs = document["config"]["hybrid-infra:loadBalancers"]
    lbs[1]["dns"]["weights"]["nlb"] = 300
    lbs[0]["dns"]["weight"] = {"octavia": 50}
    bad = tmp_path / "Pulumi.prod.yaml"
    bad.write_text(yaml.safe_dump(document))

    assert cli.main(["--stack-file", str(bad)]) == 2
    captured = capsys.readouterr()
    assert "hybrid-infra:loadBalancers[1].dns.weights.nlb" in captured.err
    assert "hybrid-infra:loadBalancers[0].dns.weight: unknown key" in captured.err
    assert "Traceback" not in captured.err
    assert captured.out == ""


def test_a_missing_snapshot_file_is_a_usage_error(tmp_path, capsys):
    assert cli.main(["--diff", str(tmp_path / "nope.json"), str(tmp_path / "nope.json")]) == 2
    assert "no such snapshot file" in capsys.readouterr().err


# --- graph ----------------------------------------------------------------------------------------


def test_graph_groups_each_hybrid_lb_with_its_nlb_twin_and_dns(prod_outputs):
    snap = json.loads(prod_outputs["json"])
    picture = graph.layout(snap)
    resources = snap["resources"]
    lbs = [u for u, r in resources.items() if r["type"] == HYBRID_LB]
    assert len(lbs) == 3
    for lb in lbs:
        name = resources[lb]["name"]
        group = next(g for g in picture.groups() if g.lines[0] == f"hybrid LB {name}")
        inside = {u for n in group.node_ids() for u in picture.nodes[n].urns}
        assert any(resources[u]["name"] == f"{name}-nlb" and resources[u]["custom"] for u in inside)
        assert any(resources[u]["name"] == f"{name}-sync" for u in inside)
        dns = [g for g in group.groups if g.lines[0] == f"weighted DNS {name}-dns"]
        assert len(dns) == 1 and len(list(dns[0].node_ids())) >= 4
    drawn_types = {resources[u]["type"] for n in picture.nodes.values() for u in n.urns}
    assert not any(t.startswith("pulumi:providers:") for t in drawn_types)


def test_graph_collapses_the_members_of_a_pool(prod_outputs):
    picture = graph.layout(json.loads(prod_outputs["json"]))
    labels = [node.lines[0] for node in picture.nodes.values()]
    assert "4 x member" in labels


def test_graph_writes_dot_and_mermaid_text(prod_outputs):
    dot, mmd = prod_outputs["dot"], prod_outputs["mmd"]
    assert dot.startswith("digraph synth {") and dot.rstrip().endswith("}")
    assert "rankdir=LR" in dot
    assert dot.count("{") == dot.count("}")
    assert "subgraph cluster_" in dot and "hybrid LB shop" in dot
    lines = [line.strip() for line in mmd.splitlines()]
    assert lines[1] == "flowchart LR"
    assert sum(line.startswith("subgraph ") for line in lines) == lines.count("end") > 0


def test_missing_graphviz_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(graph.GraphvizMissing, match=r"system-packages\.sh"):
        graph.render_svg("digraph {}", tmp_path / "x.svg")


def test_unknown_graph_suffix_is_refused_before_running(tmp_path, capsys):
    assert cli.main(["--stack", "prod", "--graph", str(tmp_path / "x.jpeg")]) == 2
    assert "use .svg, .png, .pdf, .dot or .mmd" in capsys.readouterr().err


def _registered(name: str, type_: str, parent: str | None, **options: Any) -> Registered:
    """A registration with a mock URN (parent type + type), as the mock monitor makes them."""
    parent_type = parent.split("::")[2].split("$")[-1] if parent else ROOT_STACK
    return Registered(
        type=type_,
        name=name,
        urn=f"urn:pulumi:t::hybrid-infra::{parent_type}${type_}::{name}",
        parent=parent or "urn:pulumi:t::hybrid-infra::pulumi:pulumi:Stack::hybrid-infra-t",
        inputs=options.get("inputs", {}),
        custom=options.get("custom", True),
        protect=False,
        dependencies=tuple(options.get("dependencies", ())),
        provider=options.get("provider"),
        delete_before_replace=False,
    )


def test_graph_draws_a_dependency_on_a_whole_component_as_one_edge_from_its_group():
    group = _registered("g", PROD, None, custom=False)
    parts = [_registered(f"p{i}", SERVICE, group.urn) for i in range(3)]
    after = _registered("after", CONFIGMAP, None, dependencies=[p.urn for p in parts])
    picture = graph.layout(snapshot.snapshot(Synthesis("t", (group, *parts, after), {})))
    prod = next(g for g in picture.groups() if g.lines == ("Prod g",))
    into_after = [e for e in picture.edges if after.name in picture.nodes[e.head].lines]
    assert [(e.tail, e.style) for e in into_after] == [(prod.id, "dependency")]


def test_graph_links_a_cluster_to_the_components_running_on_its_provider():
    cluster = _registered("c", EKS_CLUSTER, None)
    provider = _registered("k8s", KUBERNETES_PROVIDER, None, dependencies=[cluster.urn])
    on = f"{provider.urn}::k8s-id"  # a provider reference is URN::ID
    app = _registered("app", PROD, None, custom=False)
    parts = [_registered(f"d{i}", DEPLOYMENT, app.urn, provider=on) for i in range(2)]
    resources = (cluster, provider, app, *parts)
    picture = graph.layout(snapshot.snapshot(Synthesis("t", resources, {})))
    group = next(g for g in picture.groups() if g.lines == ("Prod app",))
    provider_edges = [e for e in picture.edges if e.style == "provider"]
    assert [(picture.nodes[e.tail].lines[0], e.head) for e in provider_edges] == [("c", group.id)]
