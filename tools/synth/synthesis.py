"""Run the real program under Pulumi's mocks and record the desired state it declares.

This is how tests (and reviewers without cloud credentials) see what a stack file makes: the
real `__main__.py` runs with the stack's real config, and the engine is replaced by a mock
monitor that records every registration (type, name, parent, options, inputs).

As a command (`tools.synth.cli` has the details), it previews a stack without credentials:

    uv run python -m tools.synth --stack prod                  # the desired resource tree
    uv run python -m tools.synth --stack prod --diff old.json --exit-code
    uv run python -m tools.synth --update-snapshots            # after an intended change

The golden snapshots in tests/snapshots/ are checked by tests/program/test_synth.py; when the
program's output changes on purpose, `uv run python -m tools.synth --update-snapshots` rewrites
them (review and commit the JSON diff with the change).
"""

from __future__ import annotations

import contextlib
import contextvars
import gc
import hashlib
import logging
import os
import runpy
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import mocks, rpc
from pulumi.runtime import resource as sdk_resource
from pulumi.runtime.proto import source_pb2
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from model import stackfile
from model.octavia import CATALOG_ENV
from model.stackfile import PROJECT, ROOT, SECRET_PLACEHOLDER

OCTAVIA_CATALOG = ROOT / "devenv" / "octavia-catalog.json"
READ_STACK_OUTPUTS = "pulumi:pulumi:readStackOutputs"
"""The engine's invoke for a stack's outputs, which the program calls on its own stack."""


@dataclass(frozen=True, slots=True)
class Registered:
    """One resource as the program declared it."""

    type: str
    name: str
    urn: str
    parent: str | None
    inputs: Mapping[str, Any]
    custom: bool
    protect: bool
    dependencies: tuple[str, ...]
    provider: str | None
    delete_before_replace: bool
    ignore_changes: tuple[str, ...] = ()
    """Input paths the engine keeps at their last recorded value (`*`: every input)."""


@dataclass(frozen=True, slots=True)
class Synthesis:
    """Everything one run of the program declared."""

    stack: str
    resources: tuple[Registered, ...]
    outputs: Mapping[str, Any]
    logs: tuple[str, ...] = ()

    def of_type(self, type_: str) -> list[Registered]:
        return [r for r in self.resources if r.type == type_]

    def named(self, name: str) -> Registered:
        found = [r for r in self.resources if r.name == name]
        if len(found) != 1:
            raise KeyError(f"{len(found)} resources named {name!r}")
        return found[0]

    def children(self, parent: Registered) -> list[Registered]:
        return [r for r in self.resources if r.parent == parent.urn]


class ProgramFailed(Exception):
    """The program raised; `registered` is what it had declared by then."""

    def __init__(self, cause: BaseException, registered: tuple[Registered, ...]) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.registered = registered


def stack_config(stack: str, root: Path = ROOT) -> tuple[dict[str, str], list[str]]:
    """Read `Pulumi.<stack>.yaml` into the engine's config form: wire strings, secret keys.

    Secure values cannot be decrypted without the stack's key; they become a placeholder that
    is marked secret, which is all the program may rely on at plan time anyway.
    """
    return stackfile.read(stack, root).engine_config()


class _Recorder(mocks.MockMonitor):
    """The mock engine, plus a record of each RegisterResource request's options."""

    def __init__(self, mock: mocks.Mocks) -> None:
        super().__init__(mock)
        self.registered: list[Registered] = []

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            self.registered.append(
                Registered(
                    type=request.type,
                    name=request.name,
                    urn=response.urn,
                    parent=request.parent or None,
                    inputs=rpc.deserialize_properties(request.object, keep_unknowns=True),
                    custom=bool(request.custom),
                    protect=bool(request.protect),
                    dependencies=tuple(request.dependencies),
                    provider=request.provider or None,
                    delete_before_replace=bool(request.deleteBeforeReplace),
                    ignore_changes=tuple(request.ignoreChanges),
                )
            )
        return response


class _Mocks(mocks.Mocks):
    """Plausible outputs for the resources and invokes the program uses."""

    def __init__(self, invokes: Mapping[str, Callable[[Mapping[str, Any]], dict]]) -> None:
        self.invokes = invokes

    def new_resource(self, args: mocks.MockResourceArgs) -> tuple[str | None, dict]:
        state = dict(args.inputs)
        name = args.name
        state.setdefault("id", f"{name}-id")
        for key, value in MOCK_OUTPUTS.get(args.typ, {}).items():
            state.setdefault(key, value.format(name=name))
        state.setdefault("arn", f"arn:aws:mock:::{args.typ.split(':')[-1].lower()}/{name}")
        if args.typ == "kubernetes:core/v1:Service" and _is_load_balancer(state):
            # The cloud's controller gives the Service an address, and the kubernetes provider
            # waits for it before the create completes.
            host = f"{name.lower()}.lb.mock"
            state["status"] = {"loadBalancer": {"ingress": [{"hostname": host}]}}
        if args.typ == "aws:eks/cluster:Cluster":
            # EKS makes the cluster security group; rules are added to it by id.
            state["vpcConfig"] = {
                **state.get("vpcConfig", {}),
                "clusterSecurityGroupId": f"sg-{name}",
            }
        return f"{name}-id", state

    def call(self, args: mocks.MockCallArgs) -> tuple[dict, list[tuple[str, str]] | None]:
        handler = self.invokes.get(args.token) or DEFAULT_INVOKES.get(args.token)
        return (handler(args.args) if handler else {}), []


def _is_load_balancer(state: Mapping[str, Any]) -> bool:
    spec = state.get("spec")
    return isinstance(spec, Mapping) and spec.get("type") == "LoadBalancer"


MOCK_OUTPUTS: dict[str, dict[str, str]] = {
    "aws:lb/loadBalancer:LoadBalancer": {
        "dnsName": "{name}-0123456789.elb.amazonaws.com",
        "zoneId": "ZMOCKNLBZONE",
        "arnSuffix": "net/{name}/0123456789abcdef",
    },
    "aws:lb/targetGroup:TargetGroup": {
        "arn": "arn:aws:elasticloadbalancing:eu-west-1:123456789012:"
        "targetgroup/{name}/0123456789abcdef",
        "arnSuffix": "targetgroup/{name}/0123456789abcdef",
    },
    "openstack:loadbalancer/loadBalancer:LoadBalancer": {"vipAddress": "172.16.0.10"},
}

DEFAULT_INVOKES: dict[str, Callable[[Mapping[str, Any]], dict]] = {
    "aws:route53/getZone:getZone": lambda a: {
        "zoneId": "Z" + hashlib.sha1(str(a.get("name")).encode()).hexdigest()[:12].upper(),
        "name": a.get("name"),
    },
}


def synthesize(
    stack: str,
    *,
    root: Path = ROOT,
    config: Mapping[str, str] | None = None,
    secret_keys: list[str] | None = None,
    invokes: Mapping[str, Callable[[Mapping[str, Any]], dict]] | None = None,
    preview: bool = False,
    octavia_catalog: Path | None = OCTAVIA_CATALOG,
    last_up: Mapping[str, Any] | None = None,
) -> Synthesis:
    """Run `__main__.py` of `root` for `stack` under mocks and return what it declared.

    Each call runs in a fresh context, so runs do not see each other's root stack or config.
    `config` overrides the stack file (tests use it to feed broken configuration).
    Adopted Octavia LBs are described from `octavia_catalog` (recorded; no OpenStack needed),
    or read live through the `OS_*` environment when it is None. `last_up` stands for the
    stack's outputs at its last `up` (an earlier run's `outputs`); without it the stack has none.
    """
    if config is None:
        config, secret_keys = stack_config(stack, root)
    if last_up is not None:
        invokes = {READ_STACK_OUTPUTS: lambda _args: {"outputs": dict(last_up)}, **(invokes or {})}
    with _mock_engine_shortcuts():
        return contextvars.Context().run(
            _synthesize,
            stack,
            root,
            dict(config),
            list(secret_keys or []),
            invokes or {},
            preview,
            octavia_catalog,
        )


def _synthesize(
    stack: str,
    root: Path,
    config: dict[str, str],
    secret_keys: list[str],
    invokes: Mapping[str, Callable[[Mapping[str, Any]], dict]],
    preview: bool,
    catalog: Path | None,
) -> Synthesis:
    recorder = _Recorder(_Mocks(invokes))
    logs: list[str] = []
    logger = logging.getLogger(f"{PROJECT}.synth.{stack}")
    logger.propagate = False
    logger.handlers = [_ListHandler(logs)]
    # INFO, like the handler: the SDK's per-resource debug records would be built, then dropped.
    logger.setLevel(logging.INFO)
    pulumi.runtime.set_all_config(config, secret_keys)
    mocks.set_mocks(
        recorder.mocks,
        project=PROJECT,
        stack=stack,
        preview=preview,
        monitor=recorder,
        logger=logger,
    )
    program = str(root / "__main__.py")
    # Adopted Octavia LBs are described from the recorded catalog unless told to read live.
    saved = os.environ.pop(CATALOG_ENV, None)
    if catalog is not None:
        os.environ[CATALOG_ENV] = str(catalog)

    def run_program() -> None:
        runpy.run_path(program, run_name="__main__")

    try:
        _sync_await(run_pulumi_func(run_program))
    except Exception as error:
        raise ProgramFailed(error, tuple(recorder.registered)) from error
    finally:
        os.environ.pop(CATALOG_ENV, None)
        if saved is not None:
            os.environ[CATALOG_ENV] = saved
    outputs = _resolve(pulumi.runtime.get_root_resource().outputs)  # type: ignore[union-attr]
    return Synthesis(stack, tuple(recorder.registered), outputs, tuple(logs))


@contextlib.contextmanager
def _mock_engine_shortcuts() -> Iterator[None]:
    """Skip work only a real engine uses; it made synth time grow faster than the program.

    - The SDK captures a full stack trace per resource (for source positions); the mock
      monitor drops it, and it was a fifth of the time.
    - Each registration leaves thousands of short-lived futures and tasks, and the cyclic GC
      rescans the whole, growing heap, so time per resource grew with the stack's size.
      Collection resumes when the run's context is gone: everything the run allocated is then
      still in the youngest generation, so collecting just that generation frees the run's
      garbage cheaply and repeated runs in one process do not pile up memory.
    """
    stack_trace = getattr(sdk_resource, "_get_stack_trace", None)
    if stack_trace is not None:
        sdk_resource._get_stack_trace = source_pb2.StackTrace
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.collect(0)
        if collecting:
            gc.enable()
        if stack_trace is not None:
            sdk_resource._get_stack_trace = stack_trace


def _resolve(outputs: Mapping[str, Any]) -> dict[str, Any]:
    resolved: dict[str, Any] = {}
    for name, value in outputs.items():
        output = pulumi.Output.from_input(value)
        plain = _sync_await(output.future())
        resolved[name] = SECRET_PLACEHOLDER if _sync_await(output.is_secret()) else plain
    return resolved


class _ListHandler(logging.Handler):
    """Collects what the program logs through `pulumi.log` under mocks."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__(logging.INFO)
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname.lower()}: {record.getMessage()}")
