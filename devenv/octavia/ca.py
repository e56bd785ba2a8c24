"""A throwaway CA for `[certificates]` and `client_ca`: the amphora create flow signs a server
certificate for every amphora even though the no-op amphora driver never uses it."""

from __future__ import annotations

from pathlib import Path

from devenv.pki import ThrowawayCa


def write_throwaway_ca(workdir: Path) -> tuple[Path, Path, Path]:
    """Write a self-signed CA, its key and a client PEM (cert+key), so the cert tasks work.
    Returns (ca_cert, ca_key, client_pem)."""
    ca_cert_path = workdir / "ca_cert.pem"
    ca_key_path = workdir / "ca_key.pem"
    client_pem_path = workdir / "client.pem"
    if ca_cert_path.exists() and ca_key_path.exists() and client_pem_path.exists():
        return ca_cert_path, ca_key_path, client_pem_path
    ca = ThrowawayCa(ca_cert_path, "devenv-octavia throwaway CA")
    ca.write_key(ca_key_path)
    # Same pair as "client" cert: nothing ever connects to an amphora with the no-op driver.
    client_pem_path.write_bytes(ca_cert_path.read_bytes() + ca_key_path.read_bytes())
    return ca_cert_path, ca_key_path, client_pem_path
