"""`python -m tools.synth --graph x.svg` draws the prod stack with the real Graphviz `dot`."""

import shutil

import pytest

from tools.synth import cli


def test_graph_command_draws_an_svg_with_graphviz(tmp_path):
    if shutil.which("dot") is None:
        pytest.fail(
            "Graphviz `dot` is not installed: run scripts/system-packages.sh "
            "(apt-get install -y graphviz). The project's test script does this."
        )
    svg = tmp_path / "prod.svg"
    assert cli.main(["--stack", "prod", "--graph", str(svg)]) == 0
    text = svg.read_text()
    assert "<svg" in text and "hybrid LB shop" in text
