"""The edge's side of Kafka: an acknowledged write or a clear "try again later".

The edge answers 2xx only after the broker acknowledged the envelope (``acks=all``). Everything that
stands between a request and that acknowledgement is bounded: the number of envelopes waiting
(``max_in_flight``, so memory stays flat in a flood) and the time a request waits
(``produce_timeout_seconds``). Past either bound the request gets 503 with ``Retry-After``.

What could never be stored gets 413 instead, with the limit in its message, so a provider does not
retry it for days: an envelope over ``ENVELOPE_MAX_BYTES`` (:mod:`schemas.limits`), and a batched
delivery (SendGrid) of more events than ``edge.max_in_flight``, which no amount of waiting admits.

The producer connects in the background: the edge starts, and answers ``/healthz``, while Kafka is
still down, and begins accepting as soon as a broker answers, without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from aiokafka.errors import KafkaError, MessageSizeTooLargeError

from schemas.envelope import WebhookEnvelope
from schemas.producer import EnvelopeProducer, EnvelopeTooLarge
from services.errors import Overloaded, PayloadTooLarge

log = logging.getLogger(__name__)


class Publisher:
    def __init__(
        self,
        producer: EnvelopeProducer,
        *,
        timeout: float,
        max_in_flight: int,
        retry_after: int,
    ) -> None:
        self._producer = producer
        self._timeout = timeout
        self._max_in_flight = max_in_flight
        self._retry_after = retry_after
        self._in_flight = 0
        self._connect_task: asyncio.Task[None] | None = None
        self._ready_checked_at = 0.0
        self._ready = False

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def connected(self) -> bool:
        return self._producer.started

    def start(self) -> None:
        """Begin connecting in the background; returns at once."""
        self._connect_task = asyncio.create_task(self._connect(), name="edge-producer-connect")

    async def _connect(self) -> None:
        delay = 0.2
        while not self._producer.started:
            try:
                await self._producer.start()
                log.info("connected to Kafka")
            except (KafkaError, OSError) as exc:
                log.warning("Kafka not reachable yet (%s); retrying in %.1fs", type(exc).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def stop(self) -> None:
        if self._connect_task is not None:
            self._connect_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connect_task
        await self._producer.stop()

    async def publish(self, envelopes: list[WebhookEnvelope]) -> None:
        """Return once every envelope is acknowledged; else raise Overloaded or PayloadTooLarge."""
        if len(envelopes) > self._max_in_flight:
            raise PayloadTooLarge(
                f"a delivery of {len(envelopes)} events is more than edge.max_in_flight "
                f"({self._max_in_flight}) admits at once; send smaller batches"
            )
        if not self._producer.started:
            raise self._unavailable("Kafka is not reachable")
        if self._in_flight + len(envelopes) > self._max_in_flight:
            raise self._unavailable("too many webhooks waiting for Kafka")
        self._in_flight += len(envelopes)
        try:
            if len(envelopes) == 1:
                await self._producer.send_and_wait(envelopes[0], self._timeout)
            else:
                await self._producer.send_many_and_wait(envelopes, self._timeout)
        except EnvelopeTooLarge as exc:
            raise PayloadTooLarge(str(exc)) from None
        except TimeoutError:
            raise self._unavailable(f"Kafka did not acknowledge within {self._timeout:g}s") from None
        except MessageSizeTooLargeError as exc:
            # Under the catalogue's limits, yet refused: the topic predates them. Stored once fixed.
            log.error(
                "Kafka refused an envelope as too large: the topic's max.message.bytes is below the "
                "catalogue's; run `breakwater topics ensure` to apply it"
            )
            raise self._unavailable("Kafka refused the write as too large for the topic") from exc
        except KafkaError as exc:
            raise self._unavailable(f"Kafka refused the write ({type(exc).__name__})") from exc
        finally:
            self._in_flight -= len(envelopes)

    def _unavailable(self, message: str) -> Overloaded:
        return Overloaded(message, retry_after=self._retry_after, status=503, code="unavailable")

    async def ready(self) -> bool:
        """Kafka answers a metadata request now (checked at most once a second)."""
        now = time.monotonic()
        if now - self._ready_checked_at < 1.0:
            return self._ready
        self._ready_checked_at = now
        self._ready = self._producer.started and await self._producer.answers(timeout=2.0)
        return self._ready
