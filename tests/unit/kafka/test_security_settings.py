"""The Kafka security settings: validated together at load, naming the fields; applied in one place."""

from __future__ import annotations

import asyncio
import ssl
import time
from pathlib import Path

import pytest
from aiokafka.abc import AbstractTokenProvider

from services.config import ConfigError, KafkaSettings, load_settings
from services.kafka import clients
from services.kafka.tls import generate_broker_tls


def kafka_error(**kafka: object) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(kafka=kafka)
    return str(caught.value)


def test_sasl_needs_a_mechanism_and_credentials() -> None:
    assert "kafka: security_protocol SASL_SSL needs sasl_mechanism" in kafka_error(
        security_protocol="SASL_SSL"
    )
    message = kafka_error(
        security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-512", sasl_username="w"
    )
    assert "sasl_mechanism SCRAM-SHA-512 needs sasl_password" in message
    message = kafka_error(security_protocol="SASL_SSL", sasl_mechanism="PLAIN")
    assert "needs sasl_username and sasl_password" in message


def test_oauthbearer_needs_an_importable_token_provider() -> None:
    base = {"security_protocol": "SASL_SSL", "sasl_mechanism": "OAUTHBEARER"}
    assert "needs sasl_oauth_token_provider" in kafka_error(**base)
    assert "is not module:callable" in kafka_error(**base, sasl_oauth_token_provider="no colon")
    assert "cannot import nowhere_at_all" in kafka_error(
        **base, sasl_oauth_token_provider="nowhere_at_all:provider"
    )
    assert "has no missing" in kafka_error(**base, sasl_oauth_token_provider="services.kafka.msk:missing")
    assert "is not callable" in kafka_error(**base, sasl_oauth_token_provider="services.config:ENV_PREFIX")


def test_credentials_without_sasl_and_files_without_tls_are_refused() -> None:
    assert "sasl_username given but security_protocol PLAINTEXT does not use SASL" in kafka_error(
        sasl_username="edge"
    )
    assert "ssl_* files given but security_protocol SASL_PLAINTEXT" in kafka_error(
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_username="u",
        sasl_password="p",
        ssl_cafile="/etc/hostname",
    )


def test_mutual_tls_needs_both_files_and_every_file_must_exist(tmp_path: Path) -> None:
    cert = tmp_path / "client.pem"
    cert.write_text("x")
    message = kafka_error(security_protocol="SSL", ssl_certfile=str(cert))
    assert "ssl_certfile and ssl_keyfile go together" in message
    message = kafka_error(security_protocol="SSL", ssl_cafile=str(tmp_path / "absent.pem"))
    assert f"ssl_cafile {tmp_path / 'absent.pem'} does not exist" in message


def test_the_environment_spells_them_as_the_model(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    tls = generate_broker_tls(tmp_path)
    monkeypatch.setenv("BREAKWATER_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("BREAKWATER_KAFKA__SASL_MECHANISM", "SCRAM-SHA-256")
    monkeypatch.setenv("BREAKWATER_KAFKA__SASL_USERNAME", "worker")
    monkeypatch.setenv("KAFKA_PASSWORD", "s3cret")
    monkeypatch.setenv("BREAKWATER_KAFKA__SASL_PASSWORD", "env:KAFKA_PASSWORD")
    monkeypatch.setenv("BREAKWATER_KAFKA__SSL_CAFILE", str(tls.ca))
    monkeypatch.setenv("BREAKWATER_KAFKA__SSL_CHECK_HOSTNAME", "false")
    kafka = load_settings().kafka
    options = clients.connection_options(kafka)
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-256"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("worker", "s3cret")
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext) and not context.check_hostname
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert clients.connection_options(kafka)["ssl_context"] is context  # one context per settings
    assert "s3cret" not in repr(kafka)  # a secret stays out of logs


def test_plaintext_gets_no_security_options() -> None:
    assert clients.connection_options(KafkaSettings()) == {
        "bootstrap_servers": "127.0.0.1:9092",
        "client_id": "breakwater",
        "security_protocol": "PLAINTEXT",
    }


class FixedToken(AbstractTokenProvider):  # type: ignore[misc]  # aiokafka is untyped
    async def token(self) -> str:
        return "token"


def fixed_token(settings: KafkaSettings) -> FixedToken:
    return FixedToken()


def not_a_provider(settings: KafkaSettings) -> str:
    return "token"


def test_the_token_provider_is_made_once_and_must_be_an_aiokafka_one() -> None:
    kafka = KafkaSettings(
        security_protocol="SASL_SSL",
        sasl_mechanism="OAUTHBEARER",
        sasl_oauth_token_provider=f"{__name__}:fixed_token",
    )
    provider = clients.connection_options(kafka)["sasl_oauth_token_provider"]
    assert isinstance(provider, FixedToken)
    assert clients.connection_options(kafka)["sasl_oauth_token_provider"] is provider
    wrong = kafka.model_copy(update={"sasl_oauth_token_provider": f"{__name__}:not_a_provider"})
    with pytest.raises(ConfigError, match="returned str, not an aiokafka AbstractTokenProvider"):
        clients.connection_options(wrong)


def test_the_msk_provider_signs_with_awss_signer_for_the_region() -> None:
    """Shape only (no AWS): the provider is aiokafka's kind and hands the region to AWS's signer."""
    pytest.importorskip("aws_msk_iam_sasl_signer")
    from services.kafka import msk

    kafka = KafkaSettings(
        security_protocol="SASL_SSL",
        sasl_mechanism="OAUTHBEARER",
        sasl_oauth_token_provider="services.kafka.msk:token_provider",
        aws_region="eu-west-1",
    )
    provider = clients.token_provider(kafka)
    assert isinstance(provider, msk.MskTokenProvider) and isinstance(provider, AbstractTokenProvider)
    assert provider.region == "eu-west-1"
    signed: list[str] = []

    class Signer:  # AWS's signer's interface: generate_auth_token(region) -> (token, expiry in ms)
        @staticmethod
        def generate_auth_token(region: str) -> tuple[str, int]:
            signed.append(region)
            return f"token-{len(signed)}", int(time.time() * 1000) + 900_000

    provider._signer = Signer
    assert asyncio.run(provider.token()) == asyncio.run(provider.token()) == "token-1"  # reused
    assert signed == ["eu-west-1"]
    with pytest.raises(ConfigError, match=r"kafka\.aws_region is needed"):
        msk.token_provider(kafka.model_copy(update={"aws_region": None}))


def test_options_that_would_be_ignored_are_refused_and_msk_iam_needs_its_region() -> None:
    oauth = {"security_protocol": "SASL_SSL", "sasl_mechanism": "OAUTHBEARER"}
    msk = "services.kafka.msk:token_provider"
    assert "sasl_oauth_token_provider given but security_protocol PLAINTEXT does not use SASL" in kafka_error(
        sasl_oauth_token_provider=msk
    )
    assert "sasl_oauth_token_provider given but sasl_mechanism is PLAIN" in kafka_error(
        security_protocol="SASL_SSL",
        sasl_mechanism="PLAIN",
        sasl_username="u",
        sasl_password="p",
        sasl_oauth_token_provider=msk,
        aws_region="eu-west-1",
    )
    assert "sasl_username given but OAUTHBEARER takes a token provider" in kafka_error(
        **oauth, sasl_oauth_token_provider=msk, aws_region="eu-west-1", sasl_username="u"
    )
    assert f"sasl_oauth_token_provider {msk} needs aws_region" in kafka_error(
        **oauth, sasl_oauth_token_provider=msk
    )
    assert "aws_region given but no sasl_oauth_token_provider uses it" in kafka_error(aws_region="eu-west-1")
    ok = load_settings(kafka={**oauth, "sasl_oauth_token_provider": msk, "aws_region": "eu-west-1"})
    assert ok.kafka.aws_region == "eu-west-1"
