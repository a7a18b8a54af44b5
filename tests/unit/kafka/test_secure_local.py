"""The secure local broker's files and configuration (no JVM: the integration tests start one)."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509

from services.kafka.local import ROLES, LocalKafka, LocalKafkaError
from services.kafka.tls import BROKER_COMMON_NAME, generate_broker_tls


def test_the_broker_certificate_is_signed_by_the_ca_for_its_address(tmp_path: Path) -> None:
    tls = generate_broker_tls(tmp_path, hosts=("127.0.0.1", "localhost"))
    ca = x509.load_pem_x509_certificate(tls.ca.read_bytes())
    chain = x509.load_pem_x509_certificates(tls.keystore.read_bytes())
    chain[0].verify_directly_issued_by(ca)
    assert chain[0].subject.rfc4514_string() == f"CN={BROKER_COMMON_NAME}"
    names = chain[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in names.get_values_for_type(x509.IPAddress)
    assert b"BEGIN PRIVATE KEY" in tls.keystore.read_bytes()  # PKCS#8, as Kafka's PEM keystore wants
    assert stat.S_IMODE(tls.keystore.stat().st_mode) == 0o600
    assert generate_broker_tls(tmp_path).keystore.read_bytes() == tls.keystore.read_bytes()  # once


def test_a_secure_node_has_a_user_per_role_the_authorizer_and_no_open_door(tmp_path: Path) -> None:
    node = LocalKafka(libs=tmp_path, home=tmp_path / "home", port=19092, controller_port=19093, secure=True)
    generate_broker_tls(node.tls.folder)
    node._make_credentials()
    for role in ROLES:
        password = node.credentials_dir / f"{role}.password"
        assert stat.S_IMODE(password.stat().st_mode) == 0o600 and len(node.password(role)) >= 32
        env = (node.credentials_dir / f"{role}.env").read_text()
        assert f"BREAKWATER_KAFKA__SASL_USERNAME={role}\n" in env and node.password(role) not in env
    assert len({node.password(role) for role in ROLES}) == len(ROLES)
    props = dict(line.split("=", 1) for line in node._properties().splitlines())
    assert props["listeners"] == "SASL_SSL://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["listener.security.protocol.map"] == "SASL_SSL:SASL_SSL,CONTROLLER:SSL"
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["authorizer.class.name"].endswith("StandardAuthorizer")
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["super.users"] == f"User:admin;User:CN={BROKER_COMMON_NAME}"
    assert props["listener.name.controller.ssl.client.auth"] == "required"
    assert "PLAINTEXT" not in props["advertised.listeners"]


def test_a_plain_node_is_unchanged(tmp_path: Path) -> None:
    props = dict(
        line.split("=", 1) for line in LocalKafka(libs=tmp_path, home=tmp_path)._properties().splitlines()
    )
    assert props["listeners"].startswith("PLAINTEXT://") and "authorizer.class.name" not in props


def test_the_controller_stays_on_loopback_when_clients_listen_everywhere(tmp_path: Path) -> None:
    node = LocalKafka(libs=tmp_path, home=tmp_path, host="0.0.0.0", port=1, controller_port=2, secure=True)
    generate_broker_tls(node.tls.folder)
    node._make_credentials()
    props = dict(line.split("=", 1) for line in node._properties().splitlines())
    assert props["listeners"] == "SASL_SSL://0.0.0.0:1,CONTROLLER://127.0.0.1:2"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:2"


def test_a_node_formatted_plain_is_not_started_secure(tmp_path: Path) -> None:
    node = LocalKafka(libs=tmp_path, home=tmp_path, secure=True)
    node.data_dir.mkdir()
    (node.data_dir / "meta.properties").write_text("node.id=1\n")
    with pytest.raises(LocalKafkaError, match="formatted without users"):
        node.format_once()
