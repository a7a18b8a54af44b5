"""A private CA and the local broker's certificate, generated with ``cryptography`` (PEM files, no keytool).

The secure local broker (``breakwater kafka start --secure``) serves TLS with ``server.pem`` (its key and
certificate chain, Kafka's PEM keystore) and trusts ``ca.pem``; clients set ``kafka.ssl_cafile`` to it.
The one certificate also authenticates the broker to its own controller (mutual TLS on loopback).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

BROKER_COMMON_NAME = "breakwater-broker"
BROKER_PRINCIPAL = f"User:CN={BROKER_COMMON_NAME}"
"""The principal Kafka's default SSL mapping gives the broker's certificate (its subject's DN)."""
VALID_DAYS = 825


@dataclass(frozen=True)
class BrokerTls:
    """Where the generated PEM files are."""

    folder: Path

    @property
    def ca(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def keystore(self) -> Path:
        """The broker's private key (PKCS#8, unencrypted, mode 0600) followed by its certificate chain."""
        return self.folder / "server.pem"

    def exists(self) -> bool:
        return self.ca.is_file() and self.keystore.is_file()


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def generate_broker_tls(folder: Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")) -> BrokerTls:
    """Write a fresh CA and a broker certificate for ``hosts`` (IP addresses or DNS names) once."""
    tls = BrokerTls(folder)
    if tls.exists():
        return tls
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("breakwater local CA"))
        .issuer_name(_name("breakwater local CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(BROKER_COMMON_NAME))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    write_private(tls.keystore, key_pem + cert.public_bytes(pem) + ca_cert.public_bytes(pem))
    tls.ca.write_bytes(ca_cert.public_bytes(pem))  # the CA's key is dropped: nothing else gets signed
    return tls


def write_private(path: Path, data: bytes) -> None:
    """Create ``path`` readable by its owner only (0600) before a byte is written."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(data)
