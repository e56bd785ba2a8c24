"""The provider-host driver, proven through the SDK's real ``python -m pulumi.dynamic``."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import grpc
import pytest

from tests.support.example_provider import ENV_TAG, CounterFileProvider, FailingProvider
from tests.support.provider_harness import ProviderHost, ProviderHostError


@pytest.fixture
def provider() -> CounterFileProvider:
    return CounterFileProvider()


@pytest.fixture
def counter_path(tmp_path: Path) -> str:
    return str(tmp_path / "counter.json")


def on_disk(path: str) -> dict:
    return json.loads(Path(path).read_text())


def test_configure_is_sent_and_host_refuses_secrets(provider_host: ProviderHost) -> None:
    assert provider_host.accepts_secrets is False
    assert provider_host.pid != os.getpid()


def test_check_rejects_empty_path_naming_the_property(provider_host, provider) -> None:
    result = provider_host.check(provider, {}, {"path": "", "content": "x"})
    assert [prop for prop, _ in result.failures] == ["path"]
    assert "non-empty" in result.failures[0][1]


def test_check_accepts_good_inputs_and_strips_provider(provider_host, provider, counter_path):
    result = provider_host.check(provider, {}, {"path": counter_path, "content": "x"})
    assert result.failures == []
    assert result.inputs == {"path": counter_path, "content": "x"}


def test_create_writes_file_inside_the_host_process(provider_host, provider, counter_path):
    id_, outs = provider_host.create(provider, {"path": counter_path, "content": "hello"})
    assert id_ == counter_path
    assert on_disk(counter_path)["content"] == "hello"
    assert outs["content"] == "hello"
    assert outs["writes"] == 1.0  # Struct numbers are doubles
    assert isinstance(outs["writes"], float)
    # The provider ran in the host after a dill round trip, not in this process.
    assert outs["pid"] == provider_host.pid
    assert on_disk(counter_path)["pid"] != os.getpid()


def test_diff_none_some_and_replace(provider_host, provider, counter_path, tmp_path):
    _, outs = provider_host.create(provider, {"path": counter_path, "content": "a"})

    same = provider_host.diff(provider, counter_path, outs, {"path": counter_path, "content": "a"})
    assert same.changes is False
    assert same.replaces == []

    changed = provider_host.diff(
        provider, counter_path, outs, {"path": counter_path, "content": "b"}
    )
    assert changed.changes is True
    assert changed.replaces == []

    moved = provider_host.diff(
        provider, counter_path, outs, {"path": str(tmp_path / "other.json"), "content": "a"}
    )
    assert moved.changes is True
    assert moved.replaces == ["path"]
    assert moved.delete_before_replace is False


def test_pulumi_log_info_goes_to_host_stderr(provider_host, provider, counter_path) -> None:
    _, outs = provider_host.create(provider, {"path": counter_path, "content": "a"})
    provider_host.diff(provider, counter_path, outs, {"path": counter_path, "content": "b"})
    assert f"info: counter-file {counter_path}: changes=True replaces=[]" in (
        provider_host.stderr_text()
    )


def test_update_rewrites_file(provider_host, provider, counter_path) -> None:
    _, outs = provider_host.create(provider, {"path": counter_path, "content": "a"})
    new_outs = provider_host.update(
        provider, counter_path, outs, {"path": counter_path, "content": "b"}
    )
    assert new_outs["content"] == "b"
    assert new_outs["writes"] == 2
    assert on_disk(counter_path)["content"] == "b"


def test_read_shows_drift_made_behind_its_back(provider_host, provider, counter_path) -> None:
    _, outs = provider_host.create(provider, {"path": counter_path, "content": "a"})
    drifted = {**on_disk(counter_path), "content": "edited by hand"}
    Path(counter_path).write_text(json.dumps(drifted))

    id_, props = provider_host.read(provider, counter_path, outs)
    assert id_ == counter_path
    assert props["content"] == "edited by hand"

    full = provider_host.read_full(provider, counter_path, outs)
    assert full.inputs is None  # this provider does not return inputs from read


def test_delete_removes_file(provider_host, provider, counter_path) -> None:
    _, outs = provider_host.create(provider, {"path": counter_path, "content": "a"})
    provider_host.delete(provider, counter_path, outs)
    assert not Path(counter_path).exists()


def test_provider_exception_surfaces_with_its_message(provider_host, counter_path) -> None:
    with pytest.raises(ProviderHostError, match="quota exceeded for counter files") as info:
        provider_host.create(FailingProvider(), {"path": counter_path})
    err = info.value
    assert err.method == "Create"
    assert err.code == grpc.StatusCode.UNKNOWN
    assert err.message == f"RuntimeError: quota exceeded for counter files in {counter_path}"
    assert "Traceback" in err.details
    # The host is still usable after a provider error.
    assert provider_host.check(CounterFileProvider(), {}, {"path": counter_path}).failures == []


def test_env_and_config_reach_the_provider(provider_host_factory, monkeypatch, counter_path):
    monkeypatch.setenv(ENV_TAG, "from-monkeypatch")
    host = provider_host_factory(config={"hybrid-infra:owner": "alice"})
    _, outs = host.create(CounterFileProvider(), {"path": counter_path, "content": "a"})
    assert outs["env_tag"] == "from-monkeypatch"
    assert outs["owner"] == "alice"


def test_explicit_env_override(provider_host_factory, counter_path) -> None:
    host = provider_host_factory(env={ENV_TAG: "explicit"})
    _, outs = host.create(CounterFileProvider(), {"path": counter_path})
    assert outs["env_tag"] == "explicit"


def test_context_manager_stops_the_host(counter_path) -> None:
    with ProviderHost() as host:
        pid = host.pid
        host.create(CounterFileProvider(), {"path": counter_path})
    assert host.returncode is not None
    assert pid is not None
    alive = subprocess.run(["ps", "-p", str(pid)], capture_output=True, check=False)
    assert alive.returncode != 0
    with pytest.raises(RuntimeError, match="not running"):
        host.check(CounterFileProvider(), {}, {"path": counter_path})
