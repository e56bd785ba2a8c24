"""octavia.conf for the local API: no auth, every backend Octavia's own no-op driver, SQLite in
the work directory, the serial taskflow engine and the throwaway CA (`ca`)."""

from __future__ import annotations

from pathlib import Path

from devenv.octavia.ca import write_throwaway_ca

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
