"""Drive Pulumi dynamic providers through the SDK's real provider host, over gRPC.

Why: unit-calling ``provider.create(...)`` in-process skips everything that breaks in
``pulumi up``: dill pickling of the provider, importing it by reference inside a fresh
interpreter, the Struct round trip of every property, and the host's error mapping.
``pulumi up`` launches ``python -u -m pulumi.dynamic`` (the SDK's
``pulumi/dynamic/__main__.py``); so do we, and we speak the same ``ResourceProvider``
gRPC protocol the engine speaks: Configure first, then Check / Diff / Create / Read /
Update / Delete.

Findings about the host that tests (and provider authors) must know:

* Logging. The host never dials an engine: before each call it runs
  ``pulumi.runtime.configure(Settings(project=$PULUMI_PROJECT, stack="stack"))`` without
  an engine address, so ``pulumi.log.get_engine()`` is ``None`` inside a provider method.
  Then ``pulumi.log.info(msg)`` prints ``"info: <msg>"`` to the host's **stderr**,
  ``warn`` prints ``"warning: <msg>"``, ``error`` prints ``"error: <msg>"``, and
  ``pulumi.log.debug`` is **silently dropped**. Passing ``resource=`` does nothing useful
  (there is no engine to attribute it to). Under the real CLI the engine reads the stderr
  and stdout of the ``pulumi-resource-pulumi-python`` plugin line by line and re-emits each
  non-blank line as an *info* diagnostic with an **empty URN**
  (``sdk/go/common/resource/plugin/plugin.go``: dynamic plugin binaries are exempt from the
  output hiding other resource plugins get), and the display attributes URN-less
  diagnostics to the **stack** row (``pulumi:pulumi:Stack``), not to the resource. So a
  one-line summary logged from ``check``/``diff`` (the only provider methods the engine
  calls during ``pulumi preview``; Create/Update are not called in preview because the
  host does not advertise ``supportsPreview``) *is* shown in preview, but under the stack,
  so put the resource name in the line. Here, that text lands in :meth:`ProviderHost.stderr_text`.
* Errors. Each CRUD handler is wrapped so any exception becomes
  ``context.abort(grpc.StatusCode.UNKNOWN, traceback.format_exc())``: the gRPC status is
  always ``UNKNOWN`` and the details are the *whole* traceback text, whose last line is
  ``"<ExceptionType>: <message>"``. :class:`ProviderHostError` carries both. Nothing is
  written to stderr for such errors. Unpickling failures (provider module not importable
  from the project root) surface the same way, on the first call.
* Struct numbers are doubles: ints sent in come back (and reach the provider) as floats
  (``3`` -> ``3.0``); cast with ``int(...)`` in providers and compare with ``==`` in tests.
* ``__provider``: the provider instance travels as the property ``__provider`` (base64 of
  its dill pickle, made with the SDK's own ``serialize_provider``). The provider's methods
  see that key in ``props``/``olds``/``news`` exactly as under ``pulumi up``; this driver
  strips it from everything it returns. The host caches one unpickled, configured provider
  per distinct pickle string per process, so instance state survives between calls on one
  host. dill pickles a class from an importable module *by reference*, so the host must be
  able to import that module from the project root (its cwd): otherwise the first call
  fails with ``ModuleNotFoundError`` / ``AttributeError: Can't get attribute ...``. Classes
  from ``__main__`` are pickled *by value* (code plus captured globals) and do work.
* Top-level ``None`` values are dropped (nested ones survive) and tuples become lists.
* A provider's ``print`` goes to the host's stdout (:meth:`ProviderHost.stdout_text`);
  under the CLI it is shown like stderr lines (info diagnostic on the stack row).
* Secrets: the host answers Configure with ``acceptSecrets=False`` (the engine then sends
  plain values); this driver never sends secret-wrapped values.
* Project/stack: inside the provider ``pulumi.get_project()`` is ``$PULUMI_PROJECT``, but
  ``pulumi.get_stack()`` is always the literal ``"stack"`` (the host hardcodes it).
  Configure ``args`` reach ``provider.configure(req)`` as ``req.config``; keys are
  namespaced (``"hybrid-infra:owner"``), ``req.config.get("owner")`` adds the project.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple, Self

import grpc
from google.protobuf import json_format, struct_pb2
from pulumi.dynamic import ResourceProvider
from pulumi.dynamic.dynamic import PROVIDER_KEY, serialize_provider
from pulumi.runtime import proto, rpc
from pulumi.runtime.proto import provider_pb2_grpc

from model.stackfile import ROOT

PROJECT_ROOT: Path = ROOT
"""The host's cwd, so provider modules import by reference exactly as under ``pulumi up``."""

UNKNOWN: str = rpc.UNKNOWN
"""Sentinel the engine sends for not-yet-known values during preview (Check/Diff only)."""

DEFAULT_PROJECT: str = "hybrid-infra"
DEFAULT_STACK: str = "test"

Props = dict[str, Any]


class ProviderHostError(Exception):
    """A gRPC call to the host failed; keeps the status code and the host's message.

    For provider exceptions ``code`` is ``grpc.StatusCode.UNKNOWN`` and ``details`` is the
    full Python traceback from the host; ``message`` is its last line
    (``"RuntimeError: boom"``). ``str(err)`` contains all of it, so
    ``pytest.raises(ProviderHostError, match="boom")`` works.
    """

    def __init__(self, method: str, code: grpc.StatusCode, details: str) -> None:
        self.method: str = method
        self.code: grpc.StatusCode = code
        self.details: str = details
        lines = [line for line in details.strip().splitlines() if line.strip()]
        self.message: str = lines[-1].strip() if lines else ""
        super().__init__(f"{method} failed with {code.name}: {self.message}\n{details}")


class CheckResult(NamedTuple):
    """Check's answer: validated inputs (sans ``__provider``) and (property, reason) pairs."""

    inputs: Props
    failures: list[tuple[str, str]]


@dataclass(frozen=True)
class DiffResult:
    """Diff's answer, decoded from the proto.

    ``changes`` is ``True`` for DIFF_SOME, ``False`` for DIFF_NONE and ``None`` for
    DIFF_UNKNOWN (the provider returned ``changes=None``; the engine then compares inputs
    itself). The Python host never fills ``diffs``/``detailedDiff``, so ``diffs`` is
    normally empty.
    """

    changes: bool | None
    replaces: list[str] = field(default_factory=list)
    delete_before_replace: bool = False
    diffs: list[str] = field(default_factory=list)


class ReadResult(NamedTuple):
    """Read's full answer; ``inputs`` is ``None`` unless the provider returned inputs."""

    id: str
    props: Props
    inputs: Props | None


def to_struct(props: Mapping[str, Any]) -> struct_pb2.Struct:
    """Encode plain JSON-like data as a Struct (numbers become doubles)."""
    struct = struct_pb2.Struct()
    struct.update(dict(props))
    return struct


def from_struct(struct: struct_pb2.Struct, *, strip_provider: bool = True) -> Props:
    """Decode a Struct into plain Python data (numbers come back as floats)."""
    out: Props = json_format.MessageToDict(struct)
    if strip_provider:
        out.pop(PROVIDER_KEY, None)
    return out


class ProviderHost:
    """A running ``python -u -m pulumi.dynamic`` plus a gRPC client speaking the engine's side.

    Use as a context manager (or call :meth:`start` / :meth:`close`). Every CRUD method takes
    the provider *instance*; it is pickled with the SDK's ``serialize_provider`` per call, as
    ``pulumi.dynamic.Resource`` does.
    """

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        *,
        config: Mapping[str, Any] | None = None,
        inherit_env: bool = True,
        project: str = DEFAULT_PROJECT,
        stack: str = DEFAULT_STACK,
        cwd: Path = PROJECT_ROOT,
        log_dir: Path | None = None,
        start_timeout: float = 30.0,
        call_timeout: float = 60.0,
    ) -> None:
        """Only records settings; :meth:`start` launches the host.

        ``env`` is merged over ``os.environ`` (read at start time) unless ``inherit_env`` is
        false; ``PULUMI_PROJECT``/``PULUMI_STACK`` are then forced to ``project``/``stack``.
        ``config`` is sent as Configure ``args`` (keys like ``"hybrid-infra:owner"``).
        ``log_dir`` keeps the host's stdout/stderr files after close (default: a temp dir
        that is removed, the text being kept in memory).
        """
        self._env_overrides: dict[str, str] = dict(env or {})
        self._config: dict[str, Any] = dict(config or {})
        self._inherit_env = inherit_env
        self.project = project
        self.stack = stack
        self.cwd = cwd
        self._log_dir_arg = log_dir
        self._start_timeout = start_timeout
        self.call_timeout = call_timeout

        self._proc: subprocess.Popen[bytes] | None = None
        self._channel: grpc.Channel | None = None
        self._stub: provider_pb2_grpc.ResourceProviderStub | None = None
        self._tmpdir: str | None = None
        self._stdout_path: Path | None = None
        self._stderr_path: Path | None = None
        self._final_stdout: str | None = None
        self._final_stderr: str | None = None
        self.port: int | None = None
        self.accepts_secrets: bool | None = None
        """What the host answered to Configure (the Python host says ``False``)."""

    # ----------------------------------------------------------------- lifecycle

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def pid(self) -> int | None:
        """The host process id, e.g. to prove a provider ran out of process."""
        return self._proc.pid if self._proc is not None else None

    def build_env(self) -> dict[str, str]:
        """The host's environment: os.environ, then caller overrides, then project/stack."""
        env: dict[str, str] = dict(os.environ) if self._inherit_env else {}
        env.update(self._env_overrides)
        env["PULUMI_PROJECT"] = self.project
        env["PULUMI_STACK"] = self.stack
        # ``python -m`` already puts the cwd first on sys.path; this also covers
        # PYTHONSAFEPATH=1, so the provider's module still imports by reference.
        paths = [str(self.cwd), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
        return env

    def start(self) -> Self:
        """Launch the host, wait for its port line, connect, and send Configure."""
        if self._proc is not None:
            raise RuntimeError("provider host already started")
        if self._log_dir_arg is not None:
            log_dir = self._log_dir_arg
            log_dir.mkdir(parents=True, exist_ok=True)
        else:
            self._tmpdir = tempfile.mkdtemp(prefix="provider-host-")
            log_dir = Path(self._tmpdir)
        self._stdout_path = log_dir / "host.stdout"
        self._stderr_path = log_dir / "host.stderr"
        try:
            # Files rather than pipes: nobody has to drain them, so a chatty provider can
            # never block on a full pipe, and tests can read them at any time.
            with self._stdout_path.open("wb") as out, self._stderr_path.open("wb") as err:
                self._proc = subprocess.Popen(
                    [sys.executable, "-u", "-m", "pulumi.dynamic"],
                    cwd=self.cwd,
                    env=self.build_env(),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                )
            self.port = self._wait_for_port()
            self._channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
            grpc.channel_ready_future(self._channel).result(timeout=self._start_timeout)
            self._stub = provider_pb2_grpc.ResourceProviderStub(self._channel)
            self.configure(self._config)
        except BaseException:
            self.close()
            raise
        return self

    def _wait_for_port(self) -> int:
        """Poll the stdout file for the single port line the host prints first."""
        assert self._proc is not None and self._stdout_path is not None
        deadline = time.monotonic() + self._start_timeout
        while True:
            data = self._stdout_path.read_bytes()
            if b"\n" in data:
                line = data.split(b"\n", 1)[0].strip()
                try:
                    return int(line)
                except ValueError:
                    raise RuntimeError(
                        f"provider host printed {line!r} instead of a port; "
                        f"stderr:\n{self.stderr_text()}"
                    ) from None
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"provider host exited with {self._proc.returncode} before printing a "
                    f"port; stderr:\n{self.stderr_text()}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"provider host printed no port within {self._start_timeout}s; "
                    f"stderr:\n{self.stderr_text()}"
                )
            time.sleep(0.02)

    def close(self) -> None:
        """Close the channel, stop the host (TERM, then KILL), keep its output text."""
        if self._channel is not None:
            self._channel.close()
            self._channel = None
            self._stub = None
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)
        self._final_stdout = self.stdout_text()
        self._final_stderr = self.stderr_text()
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    @property
    def returncode(self) -> int | None:
        """The host's exit status once stopped (``-15`` after a normal close)."""
        return self._proc.returncode if self._proc is not None else None

    # ------------------------------------------------------------------ output

    @staticmethod
    def _read(path: Path | None) -> str | None:
        if path is None or not path.exists():
            return None
        return path.read_text(errors="replace")

    def stderr_text(self) -> str:
        """Everything the host wrote to stderr so far: ``pulumi.log.*`` output lands here."""
        text = self._read(self._stderr_path)
        return text if text is not None else (self._final_stderr or "")

    def stdout_text(self) -> str:
        """What the host wrote to stdout after its port line (e.g. a provider's ``print``)."""
        text = self._read(self._stdout_path)
        if text is None:
            return self._final_stdout or ""
        return text.split("\n", 1)[1] if "\n" in text else ""

    # ------------------------------------------------------------------ calls

    @property
    def stub(self) -> provider_pb2_grpc.ResourceProviderStub:
        """The raw gRPC stub, for calls this class does not wrap."""
        if self._stub is None:
            raise RuntimeError("provider host is not running")
        return self._stub

    def _call(self, method: str, request: Any) -> Any:
        """Invoke one RPC, turning grpc.RpcError into ProviderHostError."""
        try:
            return getattr(self.stub, method)(request, timeout=self.call_timeout)
        except grpc.RpcError as err:
            code = err.code() if isinstance(err, grpc.Call) else grpc.StatusCode.UNKNOWN
            details = err.details() if isinstance(err, grpc.Call) else str(err)
            raise ProviderHostError(method, code, details or "") from None

    @staticmethod
    def _with_provider(provider: ResourceProvider, props: Mapping[str, Any]) -> Props:
        """Copy ``props`` and add the pickled provider under ``__provider``."""
        if PROVIDER_KEY in props:
            raise ValueError(f"props must not contain {PROVIDER_KEY!r}; it is added for you")
        return {**props, PROVIDER_KEY: serialize_provider(provider)}

    def configure(self, config: Mapping[str, Any] | None = None) -> bool:
        """Send Configure (done by :meth:`start`); returns the host's ``acceptSecrets``."""
        request = proto.ConfigureRequest(
            args=to_struct(config or {}),
            acceptSecrets=True,
            acceptResources=True,
        )
        response = self._call("Configure", request)
        self.accepts_secrets = bool(response.acceptSecrets)
        return self.accepts_secrets

    def check(
        self, provider: ResourceProvider, olds: Mapping[str, Any], news: Mapping[str, Any]
    ) -> CheckResult:
        """Check ``news`` against ``olds`` (old inputs; pass ``{}`` for a create)."""
        request = proto.CheckRequest(
            olds=to_struct(self._with_provider(provider, olds) if olds else {}),
            news=to_struct(self._with_provider(provider, news)),
        )
        response = self._call("Check", request)
        failures = [(f.property, f.reason) for f in response.failures]
        return CheckResult(inputs=from_struct(response.inputs), failures=failures)

    def diff(
        self,
        provider: ResourceProvider,
        id: str,
        olds: Mapping[str, Any],
        news: Mapping[str, Any],
    ) -> DiffResult:
        """Diff old outputs against new inputs, as the engine does before an update."""
        request = proto.DiffRequest(
            id=id,
            olds=to_struct(self._with_provider(provider, olds)),
            news=to_struct(self._with_provider(provider, news)),
        )
        response = self._call("Diff", request)
        changes: bool | None
        if response.changes == proto.DiffResponse.DIFF_SOME:
            changes = True
        elif response.changes == proto.DiffResponse.DIFF_NONE:
            changes = False
        else:
            changes = None
        return DiffResult(
            changes=changes,
            replaces=list(response.replaces),
            delete_before_replace=bool(response.deleteBeforeReplace),
            diffs=list(response.diffs),
        )

    def create(self, provider: ResourceProvider, props: Mapping[str, Any]) -> tuple[str, Props]:
        """Create; returns (id, outputs)."""
        request = proto.CreateRequest(properties=to_struct(self._with_provider(provider, props)))
        response = self._call("Create", request)
        return response.id, from_struct(response.properties)

    def read_full(
        self,
        provider: ResourceProvider,
        id: str,
        props: Mapping[str, Any],
        inputs: Mapping[str, Any] | None = None,
    ) -> ReadResult:
        """Read (refresh) with old outputs ``props`` and optionally old ``inputs``."""
        request = proto.ReadRequest(
            id=id,
            properties=to_struct(self._with_provider(provider, props)),
            inputs=to_struct(self._with_provider(provider, inputs)) if inputs else None,
        )
        response = self._call("Read", request)
        read_inputs = from_struct(response.inputs) if response.HasField("inputs") else None
        return ReadResult(response.id, from_struct(response.properties), read_inputs)

    def read(
        self, provider: ResourceProvider, id: str, props: Mapping[str, Any]
    ) -> tuple[str, Props]:
        """Read (refresh); returns (id, outputs)."""
        result = self.read_full(provider, id, props)
        return result.id, result.props

    def update(
        self,
        provider: ResourceProvider,
        id: str,
        olds: Mapping[str, Any],
        news: Mapping[str, Any],
    ) -> Props:
        """Update from old outputs to new inputs; returns the new outputs."""
        request = proto.UpdateRequest(
            id=id,
            olds=to_struct(self._with_provider(provider, olds)),
            news=to_struct(self._with_provider(provider, news)),
        )
        response = self._call("Update", request)
        return from_struct(response.properties)

    def delete(self, provider: ResourceProvider, id: str, props: Mapping[str, Any]) -> None:
        """Delete the resource whose outputs are ``props``."""
        request = proto.DeleteRequest(
            id=id, properties=to_struct(self._with_provider(provider, props))
        )
        self._call("Delete", request)
