"""Where things live: no import cycle among our modules, and the layers of pyproject.toml
(`lint-imports`) hold. A cycle would have to be broken by a late import, which hides an
ordering bug until the one code path that triggers it runs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp

from model.stackfile import ROOT

PACKAGES = ("model", "providers", "components", "tools")


def cycles(graph: grimp.ImportGraph) -> list[tuple[str, str]]:
    """Every direct import a → b where b also leads back to a."""
    found = []
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            if graph.chain_exists(importer=imported, imported=importer):
                found.append((importer, imported))
    return found


def test_no_module_of_ours_imports_itself_back():
    graph = grimp.build_graph(*PACKAGES, include_external_packages=False)
    assert len(graph.modules) > 40, "the graph should hold every module of ours"
    assert cycles(graph) == []


def test_the_check_finds_a_cycle_where_there_is_one():
    graph = grimp.build_graph(*PACKAGES, include_external_packages=False)
    graph.add_import(importer="model.config", imported="model.rules")
    assert ("model.config", "model.rules") in cycles(graph)


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    lint = str(Path(sys.executable).parent / "lint-imports")
    return subprocess.run([lint], cwd=cwd, capture_output=True, text=True)


def test_the_layers_hold():
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout[-2000:]
    assert "3 kept, 0 broken" in done.stdout


def test_the_purity_contract_fails_when_the_model_imports_pulumi(tmp_path: Path):
    """The model's contract from pyproject.toml, on a copy of the model where one module
    imports Pulumi."""
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (pure,) = [c for c in contracts["contracts"] if c.get("source_modules") == ["model"]]
    lines = ["[tool.importlinter]", 'root_packages = ["model"]', "include_external_packages = true"]
    lines += ["[[tool.importlinter.contracts]]"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in pure.items()]
    (tmp_path / "pyproject.toml").write_text("\n".join(lines) + "\n")
    shutil.copytree(
        ROOT / "model", tmp_path / "model", ignore=shutil.ignore_patterns("__pycache__")
    )
    assert lint_imports(tmp_path).returncode == 0
    fleet = tmp_path / "model" / "fleet.py"
    fleet.write_text(fleet.read_text() + "\nimport pulumi  # noqa\n")
    broken = lint_imports(tmp_path)
    assert broken.returncode == 1
    assert "model.fleet -> pulumi" in broken.stdout, broken.stdout[-2000:]
