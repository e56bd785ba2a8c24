"""A throwaway CA for `[certificates]` and `client_ca`: the amphora create flow signs a server
certificate for every amphora even though the no-op amphora driver never uses it."""

from __future__ import annotations

import datetime
from pathlib import Path


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
