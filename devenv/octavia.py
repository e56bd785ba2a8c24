"""A real OpenStack Octavia v2 API on 127.0.0.1, in one process, for tests and benchmarks.

Why one process: Octavia normally runs an API and a controller worker talking over RabbitMQ.
Here both share oslo.messaging's in-memory ``fake://`` transport, every backend driver
(amphora, compute, network, image, volume) is Octavia's own no-op driver, and the database is
a SQLite file in the work directory (so is the no-op drivers' own SQLite file, which Octavia
would put in /tmp). Everything above the drivers (API validation, the provisioning-status
state machine, the 409s, the taskflow flows) is the real code.

Run it::

    uv run python -m devenv.octavia --workdir DIR [--port 0]

It prints exactly one line, ``OCTAVIA_READY http://127.0.0.1:PORT/``, on stdout once it
serves, and exits cleanly on SIGTERM/SIGINT. From Python, use :class:`OctaviaServer`.

Known unfaithful points: no authentication (``auth_strategy = noauth``, so ``project_id``
must be given on create), ``operating_status`` stays OFFLINE, VIPs default to 198.51.100.1,
and any UUID is accepted as ``vip_subnet_id``.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import datetime
import functools
import inspect
import linecache
import logging
import os
import signal
import socketserver
import subprocess
import sys
import threading
import time
import warnings
from collections import deque
from pathlib import Path
from types import TracebackType
from typing import IO, Any, cast
from wsgiref import simple_server

READY_PREFIX = "OCTAVIA_READY"
NOOP_NETWORK_DB = Path("/tmp/octavia-network-noop.db")
PROJECT_ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
# Fernet keys for the amphora certificates must be exactly 32 url-safe characters.
AMP_CERT_PASSPHRASE = "devenv-octavia-not-a-secret-0000"
WORKER_HOST = "devenv-octavia"

_CONFIG_TEMPLATE = """\
[DEFAULT]
transport_url = fake://
host = {worker_host}
debug = false
use_stderr = false
log_file = {log_file}

[api_settings]
bind_host = {host}
bind_port = {port}
auth_strategy = noauth
default_provider_driver = amphora
enabled_provider_drivers = amphora:The Octavia Amphora driver (no-op backends).

[database]
connection = {db_url}
pool_timeout =
sqlite_synchronous = false

[controller_worker]
amphora_driver = amphora_noop_driver
compute_driver = compute_noop_driver
network_driver = network_noop_driver
image_driver = image_noop_driver
volume_driver = volume_noop_driver
loadbalancer_topology = SINGLE
client_ca = {ca_cert}

[haproxy_amphora]
client_cert = {client_pem}
server_ca = {ca_cert}

[certificates]
cert_generator = local_cert_generator
ca_certificate = {ca_cert}
ca_private_key = {ca_key}
server_certs_key_passphrase = {passphrase}
storage_path = {cert_storage}

[task_flow]
engine = serial
jobboard_enabled = false
max_workers = 4

[oslo_messaging_notifications]
driver = noop

[audit]
enabled = false
"""


# --------------------------------------------------------------------------------------------
# Child side: files, schema, and the server itself.
# --------------------------------------------------------------------------------------------


def write_throwaway_ca(workdir: Path) -> tuple[Path, Path, Path]:
    """Write a self-signed CA, its key and a client PEM (cert+key), so the cert tasks work.

    The amphora create flow signs a server certificate for every amphora with this CA even
    though the no-op amphora driver never uses it. Returns (ca_cert, ca_key, client_pem).
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    ca_cert_path = workdir / "ca_cert.pem"
    ca_key_path = workdir / "ca_key.pem"
    client_pem_path = workdir / "client.pem"
    if ca_cert_path.exists() and ca_key_path.exists() and client_pem_path.exists():
        return ca_cert_path, ca_key_path, client_pem_path

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "devenv-octavia throwaway CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    ca_cert_path.write_bytes(cert_pem)
    ca_key_path.write_bytes(key_pem)
    # Same pair as "client" cert: nothing ever connects to an amphora with the no-op driver.
    client_pem_path.write_bytes(cert_pem + key_pem)
    return ca_cert_path, ca_key_path, client_pem_path


def write_config(workdir: Path, port: int) -> Path:
    """Render octavia.conf into workdir; ``port`` is informative only (we bind ourselves)."""
    ca_cert, ca_key, client_pem = write_throwaway_ca(workdir)
    cert_storage = workdir / "certs"
    cert_storage.mkdir(exist_ok=True)
    path = workdir / "octavia.conf"
    path.write_text(
        _CONFIG_TEMPLATE.format(
            worker_host=WORKER_HOST,
            log_file=workdir / "octavia.log",
            host=HOST,
            port=port,
            db_url=database_url(workdir),
            ca_cert=ca_cert,
            ca_key=ca_key,
            client_pem=client_pem,
            passphrase=AMP_CERT_PASSPHRASE,
            cert_storage=cert_storage,
        )
    )
    return path


def database_url(workdir: Path) -> str:
    """SQLite URL of the state that must survive a stop()/start()."""
    return f"sqlite:///{(workdir / 'octavia.db').resolve()}"


def init_database(url: str) -> None:
    """Create the schema and seed lookup tables, once (alembic does not run on SQLite)."""
    from octavia.common import constants
    from octavia.db import base_models, models
    from oslo_db.sqlalchemy import enginefacade
    from sqlalchemy import func, select

    facade = enginefacade.transaction_context()
    facade.configure(connection=url, sqlite_fk=True)
    engine = facade.writer.get_engine()
    session = facade.writer.get_sessionmaker()()
    try:
        base_models.BASE.metadata.create_all(engine)
        with session.begin():
            seeded = session.scalar(select(func.count()).select_from(models.ProvisioningStatus))
            if seeded:
                return
            lookups: list[tuple[Any, Any]] = [
                (models.ProvisioningStatus, constants.SUPPORTED_PROVISIONING_STATUSES),
                (models.OperatingStatus, constants.SUPPORTED_OPERATING_STATUSES),
                (models.HealthMonitorType, constants.SUPPORTED_HEALTH_MONITOR_TYPES),
                (models.Algorithm, constants.SUPPORTED_LB_ALGORITHMS),
                (models.Protocol, constants.SUPPORTED_PROTOCOLS),
                (models.SessionPersistenceType, constants.SUPPORTED_SP_TYPES),
                (models.AmphoraRoles, constants.SUPPORTED_AMPHORA_ROLES),
                (models.LBTopology, constants.SUPPORTED_LB_TOPOLOGIES),
                (models.VRRPAuthMethod, constants.SUPPORTED_VRRP_AUTH),
                (models.L7RuleType, constants.SUPPORTED_L7RULE_TYPES),
                (models.L7RuleCompareType, constants.SUPPORTED_L7RULE_COMPARE_TYPES),
                (models.L7PolicyAction, constants.SUPPORTED_L7POLICY_ACTIONS),
                (models.ClientAuthenticationMode, constants.SUPPORTED_CLIENT_AUTH_MODES),
            ]
            for model, names in lookups:
                session.add_all(model(name=name) for name in sorted(set(names)))
            # Deleting a flavor / AZ re-points LBs at these "DELETED" placeholder rows.
            placeholder = "DELETED-PLACEHOLDER"
            session.add(
                models.FlavorProfile(
                    id=constants.NIL_UUID,
                    name=placeholder,
                    provider_name=constants.DELETED,
                    flavor_data="{}",
                )
            )
            session.flush()
            session.add(
                models.Flavor(
                    id=constants.NIL_UUID,
                    flavor_profile_id=constants.NIL_UUID,
                    name=placeholder,
                    enabled=False,
                    description="Placeholder for DELETED LBs with DELETED flavors",
                )
            )
            session.add(
                models.AvailabilityZoneProfile(
                    id=constants.NIL_UUID,
                    name=placeholder,
                    provider_name=constants.DELETED,
                    availability_zone_data="{}",
                )
            )
            session.flush()
            session.add(
                models.AvailabilityZone(
                    availability_zone_profile_id=constants.NIL_UUID,
                    name=constants.NIL_UUID,
                    enabled=False,
                    description="Placeholder for DELETED LBs with DELETED availability zones",
                )
            )
    finally:
        session.close()
        engine.dispose()


class _TransactionGate:
    """Admit one database transaction at a time; re-entrant for the thread that holds it.

    Unlike an RLock it may be left from another thread: a pooled connection can be rolled
    back from wherever it is returned.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._owner: int | None = None
        self._depth = 0

    def enter(self) -> None:
        me = threading.get_ident()
        with self._cond:
            while self._owner not in (None, me):
                self._cond.wait()
            self._owner = me
            self._depth += 1

    def leave(self) -> None:
        with self._cond:
            self._depth -= 1
            if self._depth <= 0:
                self._owner, self._depth = None, 0
                self._cond.notify_all()


def serialize_transactions(engine: Any) -> None:
    """Run Octavia's SQLite transactions one after another instead of failing them.

    Octavia is written for MySQL row locks. On SQLite two overlapping transactions that both
    read then write deadlock on the file lock, and SQLite answers one of them at once with
    "database is locked" (a 500 from the API) instead of waiting; parallel clients such as
    Pulumi hit it within seconds. Holding a process-wide gate from BEGIN to after
    COMMIT/ROLLBACK makes them wait their turn instead. Wraps this engine's dialect only.
    """
    dialect = engine.dialect
    if getattr(dialect, "_devenv_gate", None) is not None:
        return
    gate = _TransactionGate()
    holding: set[int] = set()  # ids of DBAPI connections inside a gated transaction
    holding_lock = threading.Lock()
    real_begin, real_commit, real_rollback, real_close = (
        dialect.do_begin,
        dialect.do_commit,
        dialect.do_rollback,
        dialect.do_close,
    )

    def _release(dbapi_conn: Any) -> None:
        with holding_lock:
            held = id(dbapi_conn) in holding
            holding.discard(id(dbapi_conn))
        if held:
            gate.leave()

    def do_begin(dbapi_conn: Any) -> None:
        gate.enter()
        with holding_lock:
            holding.add(id(dbapi_conn))
        try:
            real_begin(dbapi_conn)
        except BaseException:
            _release(dbapi_conn)
            raise

    def do_commit(dbapi_conn: Any) -> None:
        try:
            real_commit(dbapi_conn)
        finally:
            _release(dbapi_conn)

    def do_rollback(dbapi_conn: Any) -> None:
        # Also called by the pool's reset-on-return, outside any transaction: then a no-op.
        try:
            real_rollback(dbapi_conn)
        finally:
            _release(dbapi_conn)

    def do_close(dbapi_conn: Any) -> None:
        # An invalidated connection is closed without a rollback: never strand the gate.
        try:
            real_close(dbapi_conn)
        finally:
            _release(dbapi_conn)

    dialect.do_begin, dialect.do_commit = do_begin, do_commit
    dialect.do_rollback, dialect.do_close = do_rollback, do_close
    dialect._devenv_gate = gate


@functools.cache
def _class_starts(filename: str) -> dict[str, int]:
    """Map class ``__qualname__`` -> 0-based first line (decorator included), for one file.

    Same walk and first-match rule as ``inspect._ClassFinder``, but one parse per file
    instead of one per class.
    """
    starts: dict[str, int] = {}

    def walk(node: ast.AST, stack: list[str]) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                walk(child, [*stack, child.name, "<locals>"])
            elif isinstance(child, ast.ClassDef):
                first = child.decorator_list[0] if child.decorator_list else child
                starts.setdefault(".".join([*stack, child.name]), first.lineno - 1)
                walk(child, [*stack, child.name])
            else:
                walk(child, stack)

    walk(ast.parse("".join(linecache.getlines(filename))), [])
    return starts


@functools.cache
def _class_source_lines(cls: type) -> tuple[str, ...]:
    """What ``inspect.getsourcelines(cls)[0]`` returns, memoised."""
    filename = inspect.getsourcefile(cls)
    if filename is None:
        raise OSError(f"no source for {cls!r}")
    lines = linecache.getlines(filename)
    start = _class_starts(filename).get(cls.__qualname__)
    if start is None:
        raise OSError(f"class {cls.__qualname__} not found in {filename}")
    return tuple(inspect.getblock(lines[start:]))


def speed_up_wsme() -> None:
    """Make WSME's attribute ordering cheap; it dominated start-up (~60% of it).

    ``wsme.types.sort_attributes`` orders a type's attributes by the order of ``name=`` lines
    in the source of every class in its MRO, and fetches that source with
    ``inspect.getsourcelines``, which on Python 3.11 re-parses the whole module for every
    class (426 parses of octavia's type modules). This keeps WSME's exact rule and only
    memoises the source lookup; any lookup failure falls back to WSME's own function.
    """
    import wsme.types

    original = wsme.types.sort_attributes
    if getattr(original, "_devenv_fast", False):
        return

    def sort_attributes(class_: type, attributes: list[Any]) -> None:
        if not attributes or hasattr(class_, "_wsme_attr_order"):
            original(class_, attributes)
            return
        attrs = {a.key: a for a in attributes}
        try:
            lines = [
                line
                for cls in inspect.getmro(class_)
                if cls is not object
                for line in _class_source_lines(cls)
            ]
        except (TypeError, OSError):
            original(class_, attributes)
            return
        order: list[str] = []
        for raw in lines:
            line = raw.strip().replace(" ", "")
            if "=" in line:
                name = line[: line.index("=")]
                if name in attrs and name not in order:
                    order.append(name)
        order.extend(name for name in attrs if name not in order)
        attributes[:] = [attrs[name] for name in order]

    cast(Any, sort_attributes)._devenv_fast = True
    wsme.types.sort_attributes = sort_attributes


def use_bytecode_cache() -> None:
    """Cache compiled bytecode outside the tree: without it every start recompiles ~2000 files.

    The dev environment sets PYTHONDONTWRITEBYTECODE to keep .venv and the repo free of
    ``__pycache__``; a prefix under ~/.cache honours that and saves ~4 s per start.
    Override the directory with DEVENV_PYCACHE_PREFIX (empty string disables).
    """
    if sys.pycache_prefix is not None:
        return
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "hybrid-infra"
    prefix = os.environ.get("DEVENV_PYCACHE_PREFIX", str(default / "pycache"))
    if not prefix:
        return
    try:
        Path(prefix).mkdir(parents=True, exist_ok=True)
    except OSError:
        return
    sys.pycache_prefix = prefix
    sys.dont_write_bytecode = False


def isolate_noop_driver_db(workdir: Path) -> Path:
    """Point the no-op compute/network drivers' shared SQLite file into ``workdir``.

    Both drivers hard-code ``/tmp/octavia-network-noop.db``, so two servers at once (two
    pytest sessions, a benchmark next to the tests) would share ports/interfaces and each
    one's cleanup would delete the other's file. Only the path changes; the drivers do not.
    """
    from octavia.compute.drivers.noop_driver import driver as compute_noop
    from octavia.network.drivers.noop_driver import driver as network_noop

    hard_coded = f"sqlite:///{NOOP_NETWORK_DB}"
    private = workdir / NOOP_NETWORK_DB.name
    for module in (compute_noop, network_noop):
        real = module.create_engine
        if getattr(real, "_devenv_isolated", False):
            continue

        def create_engine(url: Any, *args: Any, _real: Any = real, **kwargs: Any) -> Any:
            if str(url) == hard_coded:
                url = f"sqlite:///{private}"
            return _real(url, *args, **kwargs)

        cast(Any, create_engine)._devenv_isolated = True
        module.create_engine = create_engine  # type: ignore[attr-defined]
    return private


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, simple_server.WSGIServer):
    """wsgiref serves one request at a time; tests poll while others write, so thread it."""

    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(simple_server.WSGIRequestHandler):
    """Keep the access log off stderr: the launcher's stderr is for real errors only."""

    def log_message(self, format: str, *args: Any) -> None:
        return


def _stop_on_stdin_eof(stop: threading.Event) -> None:
    """Set ``stop`` when stdin closes, i.e. when the parent holding the pipe dies.

    SIGTERM from OctaviaServer covers orderly exits; this covers a SIGKILLed pytest, so a
    crashed session can never leave an Octavia behind.
    """
    # Raw reads: a daemon thread blocked in sys.stdin's buffered reader aborts the
    # interpreter at shutdown ("could not acquire lock for <stdin>").
    try:
        while os.read(sys.stdin.fileno(), 4096):
            pass
    except (OSError, ValueError):
        pass
    stop.set()


def serve(workdir: Path, port: int, ready_stream: IO[str], exit_with_parent: bool = False) -> int:
    """Run API + worker until SIGTERM/SIGINT; announce readiness on ``ready_stream``."""
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    # Library chatter (deprecations, pkg_resources...) must never reach stdout.
    logging.captureWarnings(True)
    warnings.simplefilter("ignore")

    stop = threading.Event()

    def _on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    if exit_with_parent:
        threading.Thread(
            target=_stop_on_stdin_eof, args=(stop,), daemon=True, name="stdin-eof"
        ).start()

    use_bytecode_cache()
    speed_up_wsme()
    config_path = write_config(workdir, port)

    import oslo_messaging
    from octavia.api import app as api_app
    from octavia.common import constants, rpc
    from octavia.controller.queue.v2 import endpoints
    from octavia.db import api as db_api
    from oslo_config import cfg
    from oslo_messaging.rpc import dispatcher

    isolate_noop_driver_db(workdir)
    app = api_app.setup_app(argv=["octavia-api", "--config-file", str(config_path)])
    # After setup_app: oslo.db reads engine options from the now-parsed cfg.CONF (our blank
    # pool_timeout), and before the worker/API run: they need the tables.
    init_database(database_url(workdir))
    serialize_transactions(db_api.get_engine())  # the one engine both API and worker use

    target = oslo_messaging.Target(
        topic=constants.TOPIC_AMPHORA_V2, server=cfg.CONF.host, fanout=False
    )
    worker_endpoints = [endpoints.Endpoints()]
    rpc_server = rpc.get_server(
        target, worker_endpoints, access_policy=dispatcher.DefaultRPCAccessPolicy
    )
    # Bind before starting anything that needs stopping: a busy port then fails fast.
    httpd = simple_server.make_server(
        HOST, port, app, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler
    )
    http_thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.2}, name="octavia-api"
    )
    try:
        rpc_server.start()
        http_thread.start()
        ready_stream.write(f"{READY_PREFIX} http://{HOST}:{httpd.server_address[1]}/\n")
        ready_stream.flush()
        while not stop.wait(0.5):
            if not http_thread.is_alive():
                print("octavia API thread died", file=sys.stderr)
                return 1
    finally:
        if http_thread.is_alive():
            httpd.shutdown()
            http_thread.join(timeout=10)
        httpd.server_close()
        rpc_server.stop()
        rpc_server.wait()
        for endpoint in worker_endpoints:
            endpoint.worker.shutdown()
            endpoint.worker.tf_engine.executor.shutdown(wait=False)
        rpc.cleanup()
    return 0


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: ``python -m devenv.octavia --workdir DIR [--port N]``."""
    parser = argparse.ArgumentParser(
        description="Serve a real Octavia v2 API (no-op backends) on 127.0.0.1."
    )
    parser.add_argument("--workdir", type=Path, required=True, help="config, CA, DB and log")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--exit-with-parent",
        action="store_true",
        help="also stop when stdin reaches EOF (the parent holding the pipe died)",
    )
    args = parser.parse_args(argv)
    return serve(args.workdir, args.port, sys.stdout, exit_with_parent=args.exit_with_parent)


# --------------------------------------------------------------------------------------------
# Parent side: start/stop the launcher as a subprocess.
# --------------------------------------------------------------------------------------------


class OctaviaStartError(RuntimeError):
    """The launcher died or did not announce readiness in time."""


class OctaviaServer:
    """Run ``python -m devenv.octavia`` as a child process; usable as a context manager.

    ``stop()`` simulates "Octavia is down"; ``start()`` brings it back on the same port with
    the same SQLite database, so objects survive. Leaving the ``with`` block stops the child
    (it never writes ``/tmp/octavia-network-noop.db``: see :func:`isolate_noop_driver_db`).
    """

    def __init__(self, workdir: Path, port: int = 0, start_timeout: float = 60.0) -> None:
        self.workdir = Path(workdir).resolve()
        self.port = port
        self.start_timeout = start_timeout
        self.endpoint: str | None = None
        self.startup_seconds: float | None = None
        self._proc: subprocess.Popen[str] | None = None
        self._stderr_path = self.workdir / "launcher.stderr"
        self._drain: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """True while the child process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> str:
        """Start the child (same port after the first start) and return the endpoint URL."""
        if self.running:
            assert self.endpoint is not None
            return self.endpoint
        self.workdir.mkdir(parents=True, exist_ok=True)
        began = time.monotonic()
        with self._stderr_path.open("ab") as stderr:
            self._proc = subprocess.Popen(
                [
                    sys.executable,
                    "-u",
                    "-m",
                    "devenv.octavia",
                    "--workdir",
                    str(self.workdir),
                    "--port",
                    str(self.port),
                    "--exit-with-parent",
                ],
                cwd=PROJECT_ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                env={**os.environ, "PYTHONWARNINGS": "ignore"},
            )
        ready: list[str] = []
        got_line = threading.Event()
        proc = self._proc

        def _read_stdout() -> None:
            # Keeps draining after READY so a chatty child can never block on a full pipe.
            assert proc.stdout is not None
            for line in proc.stdout:
                if not ready and line.startswith(READY_PREFIX):
                    ready.append(line.split(maxsplit=1)[1].strip())
                    got_line.set()
            got_line.set()

        self._drain = threading.Thread(target=_read_stdout, daemon=True, name="octavia-stdout")
        self._drain.start()
        settled = got_line.wait(self.start_timeout)  # READY, or stdout closed: it is dying
        if not ready:
            if settled:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(10)
            code = proc.poll()
            self._kill()
            what = "timed out" if code is None else f"exited with {code}"
            raise OctaviaStartError(
                f"devenv.octavia {what} before {READY_PREFIX} "
                f"(after {time.monotonic() - began:.1f}s); stderr tail:\n{self.stderr_tail()}"
            )
        self.startup_seconds = time.monotonic() - began
        self.endpoint = ready[0]
        self.port = int(self.endpoint.rstrip("/").rsplit(":", 1)[1])
        return self.endpoint

    def stop(self, timeout: float = 15.0) -> None:
        """Terminate the child (SIGTERM, then SIGKILL) and wait for it; idempotent."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._close()

    def _kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._close()

    def _close(self) -> None:
        if self._drain is not None:
            self._drain.join(timeout=5)
            self._drain = None
        if self._proc is not None:
            for pipe in (self._proc.stdin, self._proc.stdout):
                if pipe is not None:
                    pipe.close()
        self._proc = None

    def stderr_tail(self, lines: int = 40) -> str:
        """Last lines of the child's stderr (plus the oslo log tail), for error messages."""
        parts = []
        for path in (self._stderr_path, self.workdir / "octavia.log"):
            if path.exists():
                with path.open(errors="replace") as fh:
                    tail = "".join(deque(fh, maxlen=lines))
                parts.append(f"--- {path.name} ---\n{tail}")
        return "\n".join(parts) or "(no output)"

    def close(self) -> None:
        """Stop the child. All its files are in ``workdir``; removing that is the caller's job.

        Nothing is left in /tmp: the no-op drivers' database is redirected into ``workdir``
        (see :func:`isolate_noop_driver_db`), so this never deletes another server's state.
        """
        self.stop()

    def __enter__(self) -> OctaviaServer:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


if __name__ == "__main__":
    sys.exit(main())
