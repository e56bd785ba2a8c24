"""The program logs each Kubernetes version warning through Pulumi (mocks: the program's shape)."""

from __future__ import annotations

from typing import Any

from model import kubernetes_versions as kv
from tests.fixtures.program import synth_with
from tests.support.kubernetes_versions import K


def test_the_program_logs_each_warning_through_pulumi():
    """Under mocks the program runs on the machine's date; a minor newer than the table warns
    whatever the date."""

    def newer(raw: dict[str, Any]) -> None:
        raw["clusters"]["C"]["kubernetesVersion"] = "1.99"

    logs = synth_with(newer).logs
    assert [line for line in logs if "kubernetesVersion" in line] == [
        f"warning: {K}.C.kubernetesVersion: Kubernetes 1.99 is not in the support table "
        "(model/kubernetes_versions.py, newest 1.36), so its end of support is not checked; "
        f"add its row from {kv.UPSTREAM_RELEASES}"
    ]
