"""Clusters the stack does not create (`kind: existing`), under Pulumi's mocks: these prove the
program's shape (what it registers, what it keeps secret), not that a cluster accepts it; the
engine tests in tests/engine/test_fleet_engine.py run the same stack on real local clusters."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pulumi.runtime import rpc

from devenv import local_stack
from model.config import ConfigError
from model.stack import parse
from model.stackfile import project_values
from tests.support.synthesis import (
    AWS_PROVIDER,
    DEPLOYMENT,
    KUBERNETES_PROVIDER,
    OPENSTACK_PROVIDER,
    provider_urn,
)
from tools.synth import synthesize
from tools.synth.synthesis import ProgramFailed

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: a
  cluster: {server: "https://127.0.0.1:6443", certificate-authority-data: Zm9v}
users:
- name: a
  user: {token: s3cret-token}
contexts:
- name: a
  context: {cluster: a, user: a}
current-context: a
"""


def local_raw() -> dict:
    raw = project_values(yaml.safe_load(local_stack.TEMPLATE.read_text()))
    for cluster in raw["clusters"].values():
        cluster["kubeconfig"] = KUBECONFIG
    return raw


def synth_local(raw: dict):
    import json

    config = {f"hybrid-infra:{k}": json.dumps(v) for k, v in raw.items()}
    return synthesize("local", config=config, secret_keys=[])


def test_a_stack_of_existing_clusters_loads_no_cloud_provider():
    result = synth_local(local_raw())
    assert not result.of_type(AWS_PROVIDER)
    assert not result.of_type(OPENSTACK_PROVIDER)
    assert not [r for r in result.resources if r.type.startswith(("aws:", "openstack:", "gcp:"))]
    providers = {r.name: r for r in result.of_type(KUBERNETES_PROVIDER)}
    assert set(providers) == {"A-kubernetes", "B-kubernetes", "C-kubernetes"}
    # Every Prod Deployment goes through its cluster's provider.
    for deployment in result.of_type(DEPLOYMENT):
        assert provider_urn(deployment) is not None


def test_the_kubeconfig_reaches_the_provider_as_a_secret_and_no_output_holds_it():
    result = synth_local(local_raw())
    provider = next(r for r in result.of_type(KUBERNETES_PROVIDER) if r.name == "A-kubernetes")
    assert rpc.is_rpc_secret(provider.inputs["kubeconfig"])
    assert "s3cret-token" not in repr(result.outputs)


def test_the_endpoint_is_the_kubeconfigs_server():
    result = synth_local(local_raw())
    assert result.outputs["clusters"]["A"]["endpoint"] == "https://127.0.0.1:6443"
    assert result.outputs["clusters"]["A"]["kind"] == "existing"


def test_a_kubeconfig_without_a_server_is_a_config_error_naming_the_key():
    raw = local_raw()
    raw["clusters"]["B"]["kubeconfig"] = "apiVersion: v1\nkind: Config\n"
    with pytest.raises(
        ProgramFailed, match=r"hybrid-infra:clusters\.B\.kubeconfig: not a kubeconfig"
    ):
        synth_local(raw)


def test_the_release_tools_read_the_encrypted_value_without_decrypting_it():
    raw = local_raw()
    raw["clusters"]["A"]["kubeconfig"] = {"secure": "v1:abc:def"}
    assert parse(raw).clusters["A"].kind == "existing"


def test_a_missing_kubeconfig_is_a_config_error_naming_the_key():
    raw = local_raw()
    del raw["clusters"]["C"]["kubeconfig"]
    with pytest.raises(ConfigError, match=r"hybrid-infra:clusters\.C\.kubeconfig: required key"):
        parse(raw)


def test_the_local_project_runs_the_repository_program(tmp_path: Path):
    local_stack.write_project(tmp_path / "program")
    project = yaml.safe_load((tmp_path / "program" / "Pulumi.yaml").read_text())
    assert project["name"] == "hybrid-infra"
    assert ((tmp_path / "program") / project["main"] / "__main__.py").resolve() == (
        local_stack.ROOT / "__main__.py"
    )


def test_aws_and_onprem_are_required_only_by_what_uses_them():
    raw = local_raw()
    assert parse(raw).aws is None  # existing clusters alone need neither
    raw["clusters"]["D"] = {
        "kind": "eks",
        "kubernetesVersion": "1.33",
        "capacity": 1000,
    }
    with pytest.raises(ConfigError) as refused:
        parse(raw)
    assert any(
        p.startswith("hybrid-infra:aws: required key is missing") for p in refused.value.problems
    )
    assert any(
        p.startswith("hybrid-infra:onPrem: required key is missing") for p in refused.value.problems
    )
