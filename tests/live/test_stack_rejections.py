"""One set of bad stack files through every reader of a stack file: the program (under mocks),
`tools.synth`, `tools.release.waves` and `tools.release.promote`. Each reader refuses each file
with the same key path, because all of them end in `model.stack.parse`; and each accepts the
file as it is. A rule run by only some readers would let a file pass the tools and fail the
program."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from model.config import ConfigError
from model.stackfile import ROOT
from tools.release import promote, waves
from tools.synth import ProgramFailed, cli, stack_config, synthesize

NS = "hybrid-infra:"
Mutation = Callable[[dict[str, Any]], None]


def rename_gke_cluster(config: dict[str, Any]) -> None:
    clusters = config[NS + "clusters"]
    clusters["games-asia-northeast-primary"] = clusters.pop("G")


BAD: dict[str, tuple[Mutation, str]] = {
    "a misspelt key": (
        lambda c: c.__setitem__(NS + "loadBalancer", []),
        "hybrid-infra:loadBalancer: unknown key (did you mean 'loadBalancers'?)",
    ),
    "a GKE pool name GKE refuses": (
        rename_gke_cluster,
        "hybrid-infra:clusters.games-asia-northeast-primary: the GKE pool name would be",
    ),
    "a segment on an unknown Prod": (
        lambda c: c[NS + "segments"][0].__setitem__("prods", ["Z-9"]),
        "hybrid-infra:segments[0].prods[0]: unknown prod 'Z-9'",
    ),
    "an EKS minor past its end of support": (
        lambda c: c[NS + "clusters"]["B"].__setitem__("kubernetesVersion", "1.29"),
        "hybrid-infra:clusters.B.kubernetesVersion: EKS 1.29 reached the end of extended support",
    ),
    "RDP behind an NLB twin": (
        lambda c: c[NS + "loadBalancers"][1]["create"]["listeners"][0].__setitem__("port", 3389),
        "hybrid-infra:loadBalancers[1].create.listeners[0].port: 3389 (RDP) is a management port",
    ),
    "Prods beyond their cluster's capacity": (
        lambda c: c[NS + "clusters"]["C"].__setitem__("capacity", 100),
        "hybrid-infra:clusters.C.capacity: 100 users, but the Prods on C",
    ),
}


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=test", "-c", "user.email=test@example.net", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


@pytest.fixture
def repo(tmp_path: Path) -> Callable[[Mutation | None], Path]:
    """A git repository of the stack files, prod's changed by `mutate`, staging's release
    verified (so that promotion staging → prod has something to write)."""

    def make(mutate: Mutation | None) -> Path:
        for name in ("Pulumi.yaml", "Pulumi.staging.yaml", "Pulumi.prod.yaml"):
            shutil.copy(ROOT / name, tmp_path / name)
        staging = tmp_path / "Pulumi.staging.yaml"
        staging.write_text(staging.read_text().replace("verified: false", "verified: true"))
        if mutate is not None:
            document = yaml.safe_load((tmp_path / "Pulumi.prod.yaml").read_text())
            mutate(document["config"])
            (tmp_path / "Pulumi.prod.yaml").write_text(yaml.safe_dump(document))
        git(tmp_path, "init", "-q")
        git(tmp_path, "add", ".")
        git(tmp_path, "commit", "-qm", "stack files")
        return tmp_path

    return make


def verdicts(root: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    """What each reader says of `root`'s Pulumi.prod.yaml: "ok", or its error text."""
    said: dict[str, str] = {}
    config, secret_keys = stack_config("prod", root)
    try:
        synthesize("prod", config=config, secret_keys=secret_keys)
        said["program"] = "ok"
    except ProgramFailed as failed:
        assert isinstance(failed.cause, ConfigError), failed.cause
        said["program"] = str(failed.cause)
    for reader, run in (
        (
            "synth",
            lambda: cli.main(["--stack-file", str(root / "Pulumi.prod.yaml"), "--json", "-"]),
        ),
        ("waves", lambda: waves.main(["--stack", "prod", "--root", str(root)])),
        ("promote", lambda: promote.main(["staging", "prod", "--root", str(root), "--dry-run"])),
    ):
        code = run()
        captured = capsys.readouterr()
        said[reader] = "ok" if code == 0 else f"exit {code}: {captured.err}"
    return said


def test_every_reader_accepts_the_stack_file_as_it_is(repo, capsys):
    assert set(verdicts(repo(None), capsys).values()) == {"ok"}


@pytest.mark.parametrize("mistake", sorted(BAD))
def test_every_reader_refuses_the_same_bad_stack_file_with_the_same_key_path(mistake, repo, capsys):
    mutate, problem = BAD[mistake]
    said = verdicts(repo(mutate), capsys)
    assert sorted(said) == ["program", "promote", "synth", "waves"]
    for reader, verdict in said.items():
        assert problem in verdict, f"{reader} did not refuse {mistake}: {verdict}"
