"""Alerts when a service changes state, to the log and to the ``ops.alerts`` Kafka topic.

:class:`AlertManager` decides *whether* to alert: once per state change (down, degraded, recovered),
and once when the SLA is first breached (again only after it was met in between), so a service that
stays down does not alert on every health check. Sinks decide *where*; a sink that fails is logged
and skipped, because an alert must never break the call that triggered it.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import ClassVar, Literal, Protocol

from aiokafka import AIOKafkaProducer  # type: ignore[import-untyped,unused-ignore]

from schemas.topics import ALERTS
from services.kafka import clients
from services.kafka.clients import KafkaTarget
from services.reliability.monitor import ServiceState

log = logging.getLogger(__name__)

AlertKind = Literal["down", "degraded", "sla_breached", "recovered"]
ALERTS_TOPIC = ALERTS


@dataclass(frozen=True)
class Alert:
    kind: AlertKind
    service: str
    state: ServiceState
    previous: ServiceState
    criticality: str
    message: str
    impact: tuple[str, ...] = ()
    """Services that depend on this one, directly or not."""
    at: float = field(default_factory=time.time)

    def to_json(self) -> bytes:
        data = asdict(self)
        data["state"], data["previous"], data["impact"] = (
            self.state.value,
            self.previous.value,
            list(self.impact),
        )
        return json.dumps(data, sort_keys=True).encode()


class AlertSink(Protocol):
    async def send(self, alert: Alert) -> None: ...


class LogAlertSink:
    """Writes alerts to a logger: down at ERROR, degraded and SLA at WARNING, recovered at INFO."""

    LEVELS: ClassVar[dict[AlertKind, int]] = {
        "down": logging.ERROR,
        "degraded": logging.WARNING,
        "sla_breached": logging.WARNING,
        "recovered": logging.INFO,
    }

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or log

    async def send(self, alert: Alert) -> None:
        self.logger.log(self.LEVELS[alert.kind], "alert %s: %s", alert.kind, alert.message)


class KafkaAlertSink:
    """Produces each alert as JSON to ``topic``, keyed by service (so one service's alerts stay in order).

    >>> sink = KafkaAlertSink(settings.kafka)  # doctest: +SKIP
    >>> await sink.start(); await sink.send(alert); await sink.stop()  # doctest: +SKIP
    """

    def __init__(
        self,
        bootstrap_servers: KafkaTarget,
        *,
        topic: str = ALERTS_TOPIC,
        client_id: str = "breakwater-alerts",
    ):
        self.topic = topic
        self._bootstrap = bootstrap_servers
        self._client_id = client_id
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        """Connect (aiokafka binds the producer to the running loop, so it is made here)."""
        producer = clients.producer(
            self._bootstrap, client_id=self._client_id, acks="all", enable_idempotence=True
        )
        await producer.start()
        self._producer = producer

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def send(self, alert: Alert) -> None:
        if self._producer is None:
            raise RuntimeError("KafkaAlertSink.send before start()")
        await self._producer.send_and_wait(self.topic, alert.to_json(), key=alert.service.encode())


def _kind(previous: ServiceState, state: ServiceState) -> AlertKind | None:
    if state is ServiceState.DOWN:
        return "down"
    if state is ServiceState.DEGRADED:
        return "degraded"
    if state is ServiceState.HEALTHY and previous in (ServiceState.DOWN, ServiceState.DEGRADED):
        return "recovered"
    return None


class AlertManager:
    """Turns state and SLA observations into alerts, without repeats, and sends them to every sink."""

    def __init__(self, sinks: list[AlertSink] | None = None) -> None:
        self.sinks: list[AlertSink] = sinks if sinks is not None else [LogAlertSink()]
        self._states: dict[str, ServiceState] = {}
        self._sla_breached: dict[str, bool] = {}
        self.sent: deque[Alert] = deque(maxlen=1000)
        """The latest alerts, newest last (for tests and the report)."""

    def decide(
        self,
        service: str,
        state: ServiceState,
        sla_compliant: bool | None,
        *,
        criticality: str = "medium",
        impact: tuple[str, ...] = (),
    ) -> list[Alert]:
        """The alerts this observation calls for (none if nothing changed)."""
        alerts = []
        previous = self._states.get(service, ServiceState.UNKNOWN)
        self._states[service] = state
        if state is not previous and (kind := _kind(previous, state)) is not None:
            tail = f"; affects {', '.join(impact)}" if impact and kind != "recovered" else ""
            message = f"{service} ({criticality}) is {state.value}, was {previous.value}{tail}"
            alerts.append(Alert(kind, service, state, previous, criticality, message, impact))
        breached = sla_compliant is False
        if breached and not self._sla_breached.get(service, False):
            message = f"{service} ({criticality}) breaches its SLA"
            alerts.append(Alert("sla_breached", service, state, previous, criticality, message, impact))
        if sla_compliant is not None:
            self._sla_breached[service] = breached
        return alerts

    async def emit(self, alerts: list[Alert]) -> None:
        for alert in alerts:
            self.sent.append(alert)
            for sink in self.sinks:
                try:
                    await sink.send(alert)
                except Exception:
                    log.exception("alert sink %s failed for %s", type(sink).__name__, alert.kind)

    async def observe(
        self,
        service: str,
        state: ServiceState,
        sla_compliant: bool | None,
        *,
        criticality: str = "medium",
        impact: tuple[str, ...] = (),
    ) -> list[Alert]:
        alerts = self.decide(service, state, sla_compliant, criticality=criticality, impact=impact)
        await self.emit(alerts)
        return alerts
