"""The server process: the Octavia API (pecan, under a threaded wsgiref server) and the v2
controller worker's RPC endpoints, sharing oslo.messaging's in-memory `fake://` transport.

    uv run python -m devenv.octavia --workdir DIR [--port 0]

It prints exactly one line, ``OCTAVIA_READY http://127.0.0.1:PORT/``, on stdout once it
serves, and exits cleanly on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socketserver
import sys
import threading
import warnings
from pathlib import Path
from typing import IO, Any
from wsgiref import simple_server

from devenv.octavia.config import HOST, database_url, write_config
from devenv.octavia.noop_drivers import isolate_noop_driver_db
from devenv.octavia.schema import init_database
from devenv.octavia.startup import speed_up_wsme, use_bytecode_cache
from devenv.octavia.transactions import serialize_transactions

READY_PREFIX = "OCTAVIA_READY"


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
        prog="python -m devenv.octavia",
        description="Serve a real Octavia v2 API (no-op backends) on 127.0.0.1.",
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
