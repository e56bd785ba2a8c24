"""Where things live: no import cycle among our modules, and the layers of pyproject.toml
(`lint-imports`) hold. A cycle would have to be broken by a late import, which hides an
ordering bug until the one code path that triggers it runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
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


def test_the_layers_hold():
    done = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout[-2000:]
    assert "2 kept, 0 broken" in done.stdout
