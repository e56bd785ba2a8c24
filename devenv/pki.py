"""Throwaway certificate authorities for local servers: the API servers of `devenv/kube.py`, the
TLS Prods of `devenv/haproxy.py`. Keys live only as long as the run (nothing is protected by a
passphrase), and certificates last a month: long enough for any run, never for anything real.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

VALID_FOR = datetime.timedelta(days=30)


def private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def write_secret(path: Path, data: bytes) -> Path:
    """A file only its owner reads: private keys, tokens."""
    path.write_bytes(data)
    path.chmod(0o600)
    return path


@dataclass(frozen=True, slots=True)
class Issued:
    """A serving certificate and its key, as PEM files."""

    cert: Path
    key: Path


class ThrowawayCa:
    """A self-signed CA whose certificate is written to `cert`; `issue` signs serving certificates.

    Its key is written only on request (`write_key`), for a server that signs with it itself.
    """

    def __init__(self, cert: Path, common_name: str) -> None:
        self.cert = cert
        self._key = private_key()
        self._name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        self.certificate = (
            _builder(self._name, self._name, self._key)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        cert.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))

    def write_key(self, path: Path) -> Path:
        return write_secret(path, key_pem(self._key))

    def issue(
        self,
        stem: Path,
        common_name: str,
        dns_names: Sequence[str],
        ip_addresses: Sequence[str] = (),
    ) -> Issued:
        """`<stem>.crt` and `<stem>.key`: a certificate for those names, signed by this CA."""
        key = private_key()
        names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
        names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
        certificate = (
            _builder(
                x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]), self._name, key
            )
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        cert = stem.with_suffix(".crt")
        cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        return Issued(cert=cert, key=write_secret(stem.with_suffix(".key"), key_pem(key)))


def _builder(
    subject: x509.Name, issuer: x509.Name, key: rsa.RSAPrivateKey
) -> x509.CertificateBuilder:
    """Valid from a few minutes ago, so a clock a little behind still accepts it."""
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALID_FOR)
    )
