"""One secure broker for the session: SASL_SSL with SCRAM-SHA-512, a user per role, the StandardAuthorizer.

Each test gets its own pipeline (topic prefix, app id) with topics made by the admin and the roles'
ACLs applied, as ``breakwater kafka start --secure`` does on the local node.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from services.cli.acls import configured_acls
from services.config import BreakwaterSettings
from services.kafka.acls import apply_acls
from services.kafka.admin import ensure_topics
from services.kafka.local import LocalKafka, start_fresh_broker
from streams.topics import catalogue
from tests.support.edge import SIGNING_KEY
from tests.support.pipeline import pipeline_config, settings_of


@pytest.fixture(scope="session")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    broker = start_fresh_broker(tmp_path_factory.mktemp("secure-kafka"), heap="512m", secure=True)
    try:
        yield broker
    finally:
        broker.stop()


def role_kafka(broker: LocalKafka, role: str, password: str | None = None) -> dict[str, Any]:
    """The ``kafka`` settings section of a process running as ``role`` (a wrong ``password`` if given)."""
    return {
        "bootstrap": broker.bootstrap,
        "request_timeout_ms": 5000,
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_username": role,
        "sasl_password": password or broker.password(role),
        "ssl_cafile": str(broker.tls.ca),
    }


class SecurePipeline:
    """One test's pipeline on the secure broker, with the settings of each role."""

    def __init__(self, broker: LocalKafka, config: dict[str, Any]) -> None:
        self.broker = broker
        self.config = config

    def config_as(self, role: str, password: str | None = None) -> dict[str, Any]:
        return {**self.config, "kafka": role_kafka(self.broker, role, password)}

    def settings(self, role: str, password: str | None = None) -> BreakwaterSettings:
        return settings_of(self.config_as(role, password))

    async def provision(self, *, topics: bool = True) -> None:
        """As the admin: the catalogue's topics (unless not), and the roles' ACLs."""
        admin = self.settings("admin")
        if topics:
            await ensure_topics(admin.kafka, catalogue(admin))
        await apply_acls(admin.kafka, configured_acls(admin))


@pytest.fixture
def secure_pipeline(
    secure_broker: LocalKafka, unique: Callable[[str], str], tmp_path: Path
) -> SecurePipeline:
    config = pipeline_config(secure_broker.bootstrap, unique("sec"), tmp_path / "state")
    config["signing"] = {"active_key_id": "t1", "keys": {"t1": SIGNING_KEY.decode()}}
    config["topics"] = {"partitions": 1}  # what is tested is who may do what, not spreading load
    return SecurePipeline(secure_broker, config)
