"""Promotion against copies of the real stack files in throwaway git repositories."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from model.stackfile import ROOT
from tools.release import promote
from tools.release.promote import PromotionRefused, main

FILES = ("Pulumi.yaml", "Pulumi.dev.yaml", "Pulumi.staging.yaml", "Pulumi.prod.yaml")
# Each stack's own secret, as `pulumi config set --secret` writes it: never copied across.
SECRETS = {"staging": "v1:hC3vJ2s1Qm0dZk9x:8Jp1", "prod": "v1:N2a9kW4pQx7rTz1b:Xq8H"}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=test", "-c", "user.email=test@example.net", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def edit(repo: Path, name: str, old: str, new: str, *, commit: bool = True) -> None:
    path = repo / name
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} is not unique in {name}"
    path.write_text(text.replace(old, new))
    if commit:
        git(repo, "commit", "-qam", f"edit {name}")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    for name in FILES:
        shutil.copy(ROOT / name, tmp_path / name)
    for stack, secret in SECRETS.items():
        path = tmp_path / f"Pulumi.{stack}.yaml"
        secure = f"config:\n  gcp:credentials:\n    secure: {secret}\n"
        path.write_text(path.read_text().replace("config:\n", secure, 1))
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "stack files")
    return tmp_path


@pytest.fixture
def verified(repo: Path) -> Path:
    """staging has verified its release (the real file has not yet)."""
    edit(repo, "Pulumi.staging.yaml", "verified: false", "verified: true")
    return repo


def release(repo: Path, stack: str) -> dict:
    return yaml.safe_load((repo / f"Pulumi.{stack}.yaml").read_text())["config"][
        "hybrid-infra:release"
    ]


def test_promotion_moves_the_release_and_restarts_the_rollout(verified, capsys):
    before = (verified / "Pulumi.prod.yaml").read_text()
    assert main(["staging", "prod", "--root", str(verified)]) == 0
    assert release(verified, "prod") == {
        "version": "2.4.0",  # staging's
        "previousVersion": "2.3.1",  # what prod ran: its rollback target
        "wave": 0,
        "verified": False,
    }
    out = capsys.readouterr().out
    assert '-    version: "2.3.1"' in out and '+    version: "2.4.0"' in out
    # the diff to review is exactly the four release lines
    changed = [
        line
        for line in git(verified, "diff", "-U0").splitlines()
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    assert changed == [
        '-    version: "2.3.1"',
        '-    previousVersion: "2.3.0"',
        "-    wave: 4",
        "-    verified: true",
        '+    version: "2.4.0"',
        '+    previousVersion: "2.3.1"',
        "+    wave: 0",
        "+    verified: false",
    ]
    after = (verified / "Pulumi.prod.yaml").read_text()
    assert after.splitlines()[:2] == before.splitlines()[:2]  # the header comments
    assert SECRETS["prod"] in after and SECRETS["staging"] not in after  # its own secret


def test_environment_specific_keys_never_move(verified):
    before = yaml.safe_load((verified / "Pulumi.prod.yaml").read_text())["config"]
    assert main(["staging", "prod", "--root", str(verified)]) == 0
    after = yaml.safe_load((verified / "Pulumi.prod.yaml").read_text())["config"]
    moved = {k for k in before if before[k] != after[k]}
    assert moved == {"hybrid-infra:release"}
    for key in ("hybrid-infra:aws", "gcp:credentials", "hybrid-infra:tags", "hybrid-infra:app"):
        assert after[key] == before[key]


def test_a_new_image_is_copied_in_place(verified):
    new = "registry.example.net/shop/web-next"
    edit(verified, "Pulumi.staging.yaml", "image: registry.example.net/shop/web", f"image: {new}")
    assert main(["staging", "prod", "--root", str(verified)]) == 0
    config = yaml.safe_load((verified / "Pulumi.prod.yaml").read_text())["config"]
    assert config["hybrid-infra:app"]["image"] == new
    assert config["hybrid-infra:app"]["maxReplicas"] == 30  # prod's, not staging's 6
    assert f"    image: {new}\n" in (verified / "Pulumi.prod.yaml").read_text()


def written(repo: Path) -> dict[str, tuple[bytes, int]]:
    """Every file of the repository, git's own included, byte for byte with its mtime."""
    return {
        str(p.relative_to(repo)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(repo.rglob("*"))
        if p.is_file()
    }


def test_dry_run_shows_the_diff_and_writes_nothing_anywhere(verified, capsys):
    """Not the stack file, and not git's index either, which a plain `git status` rewrites
    when a file's stat data is stale (as here, after a touch)."""
    for name in FILES:
        os.utime(verified / name, ns=(1, 1))
    before = written(verified)
    assert main(["staging", "prod", "--dry-run", "--root", str(verified)]) == 0
    out = capsys.readouterr().out
    assert '+    version: "2.4.0"' in out and "Dry run" in out
    assert written(verified) == before


def test_an_unverified_release_is_refused(repo, capsys):
    assert release(repo, "staging")["verified"] is False
    assert main(["staging", "prod", "--root", str(repo)]) == 1
    assert "not verified" in capsys.readouterr().err
    assert git(repo, "status", "--porcelain") == ""


@pytest.mark.parametrize(
    ("source", "target"), [("dev", "prod"), ("prod", "staging"), ("staging", "staging")]
)
def test_only_adjacent_forward_steps_are_promotions(verified, capsys, source, target):
    assert main([source, target, "--root", str(verified)]) == 1
    assert "one step at a time along dev → staging → prod" in capsys.readouterr().err


def test_a_source_without_a_release_is_refused(verified):
    with pytest.raises(PromotionRefused, match=r"Pulumi.dev.yaml has no hybrid-infra:release"):
        promote.promote(verified, "dev", "staging")


def test_uncommitted_edits_to_the_target_are_refused(verified, capsys):
    edit(verified, "Pulumi.prod.yaml", "maxReplicas: 30", "maxReplicas: 31", commit=False)
    assert main(["staging", "prod", "--root", str(verified)]) == 1
    assert "Pulumi.prod.yaml has uncommitted changes" in capsys.readouterr().err
    assert "maxReplicas: 31" in (verified / "Pulumi.prod.yaml").read_text()  # left alone


def test_uncommitted_edits_to_the_source_are_refused(repo, capsys):
    edit(repo, "Pulumi.staging.yaml", "verified: false", "verified: true", commit=False)
    assert main(["staging", "prod", "--root", str(repo)]) == 1
    assert "Pulumi.staging.yaml has uncommitted changes" in capsys.readouterr().err


def test_outside_a_git_repository_is_refused(tmp_path):
    for name in FILES:
        shutil.copy(ROOT / name, tmp_path / name)
    for stack, secret in SECRETS.items():
        path = tmp_path / f"Pulumi.{stack}.yaml"
        secure = f"config:\n  gcp:credentials:\n    secure: {secret}\n"
        path.write_text(path.read_text().replace("config:\n", secure, 1))
    with pytest.raises(PromotionRefused, match="not a git repository"):
        promote.promote(tmp_path, "staging", "prod")


def test_a_result_that_would_not_validate_is_refused_and_nothing_written(verified, capsys):
    edit(verified, "Pulumi.staging.yaml", "image: registry.example.net", "image: Registry.Example")
    before = (verified / "Pulumi.prod.yaml").read_text()
    assert main(["staging", "prod", "--root", str(verified)]) == 1
    err = capsys.readouterr().err
    assert "would not validate" in err and "hybrid-infra:app.image" in err
    assert (verified / "Pulumi.prod.yaml").read_text() == before


def test_promoting_the_release_the_target_already_runs_changes_nothing(verified, capsys):
    assert main(["staging", "prod", "--root", str(verified)]) == 0
    git(verified, "commit", "-qam", "promote")
    assert main(["staging", "prod", "--root", str(verified)]) == 0
    assert "nothing to promote" in capsys.readouterr().out
    assert git(verified, "status", "--porcelain") == ""


def test_flow_style_and_single_quoted_scalars_keep_their_style():
    text = (
        "config:\n"
        "  hybrid-infra:release: {version: '1.0', previousVersion: '0.9', "
        "wave: 2, verified: true}\n"
        "  hybrid-infra:app:\n"
        "    image: reg.example/app  # the image\n"
    )
    changes = (
        promote.Change(("release", "version"), "1.0", "1.1", ""),
        promote.Change(("release", "previousVersion"), "0.9", "1.0", ""),
        promote.Change(("release", "wave"), 2, 0, ""),
        promote.Change(("release", "verified"), True, False, ""),
        promote.Change(("app", "image"), "reg.example/app", "reg.example/app2", ""),
    )
    assert promote.apply(text, changes) == (
        "config:\n"
        "  hybrid-infra:release: {version: '1.1', previousVersion: '1.0', "
        "wave: 0, verified: false}\n"
        "  hybrid-infra:app:\n"
        "    image: reg.example/app2  # the image\n"
    )


def test_a_plain_value_that_yaml_would_misread_is_quoted():
    text = "config:\n  hybrid-infra:release:\n    version: v1\n"
    change = promote.Change(("release", "version"), "v1", "2.0", "")
    assert promote.apply(text, [change]) == 'config:\n  hybrid-infra:release:\n    version: "2.0"\n'
