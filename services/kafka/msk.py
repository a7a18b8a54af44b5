"""Amazon MSK IAM authentication: OAUTHBEARER tokens signed by AWS's own signer (the ``msk`` extra).

Set ``kafka.sasl_oauth_token_provider = "services.kafka.msk:token_provider"`` with
``security_protocol = "SASL_SSL"``, ``sasl_mechanism = "OAUTHBEARER"`` and ``kafka.aws_region``;
credentials come from the usual AWS chain (environment, profile, instance or task role).
"""

from __future__ import annotations

from aiokafka.abc import AbstractTokenProvider

from services.config import ConfigError, KafkaSettings


class MskTokenProvider(AbstractTokenProvider):  # type: ignore[misc]  # aiokafka is untyped
    """Signs a token with ``aws-msk-iam-sasl-signer-python`` and reuses it until shortly before expiry."""

    def __init__(self, region: str) -> None:
        try:
            from aws_msk_iam_sasl_signer import MSKAuthTokenProvider
        except ImportError:
            raise ConfigError(
                "MSK IAM needs the msk extra: pip install 'breakwater[msk]' (aws-msk-iam-sasl-signer-python)"
            ) from None
        self.region = region
        self._signer = MSKAuthTokenProvider
        self._token: str | None = None
        self._expires_ms = 0

    async def token(self) -> str:
        import asyncio
        import time

        now_ms = int(time.time() * 1000)
        if self._token is None or now_ms > self._expires_ms - 60_000:  # a minute's margin
            # Signing may fetch credentials (instance metadata, STS): off the event loop.
            token, expires_ms = await asyncio.to_thread(self._signer.generate_auth_token, self.region)
            self._token, self._expires_ms = token, int(expires_ms)
        return self._token


def token_provider(settings: KafkaSettings) -> MskTokenProvider:
    """What ``kafka.sasl_oauth_token_provider`` names for MSK IAM."""
    if not settings.aws_region:
        raise ConfigError("kafka.aws_region is needed to sign MSK IAM tokens")
    return MskTokenProvider(settings.aws_region)
